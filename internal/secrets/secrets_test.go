package secrets_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/outgate/outgate/internal/secrets"
)

func TestParseTemplate(t *testing.T) {
	ok := []struct {
		in   string
		refs []string
	}{
		{"Basic ${secret:env:PAY_BASIC}", []string{"${secret:env:PAY_BASIC}"}},
		{"${secret:ssm:/outgate/pay/key}", []string{"${secret:ssm:/outgate/pay/key}"}},
		{"${secret:secretsmanager:pay/keys#api_key}-${secret:file:/run/s/x}", []string{"${secret:secretsmanager:pay/keys#api_key}", "${secret:file:/run/s/x}"}},
		{"${secret:secretsmanager:arn:aws:secretsmanager:eu-west-1:123456789012:secret:pay-AbCdEf#k}", []string{"${secret:secretsmanager:arn:aws:secretsmanager:eu-west-1:123456789012:secret:pay-AbCdEf#k}"}},
		{"no reference", nil},
	}
	for _, c := range ok {
		tm, err := secrets.ParseTemplate(c.in)
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		var got []string
		for _, r := range tm.Refs() {
			got = append(got, r.String())
		}
		if strings.Join(got, " ") != strings.Join(c.refs, " ") {
			t.Errorf("%q: refs %v, want %v", c.in, got, c.refs)
		}
	}
	bad := map[string]string{
		"${env:X}":                     "only ${secret:SOURCE:NAME}",
		"${secret:env:X":               "unterminated",
		"${secret:vault:x}":            "unknown source",
		"${secret:env:1X}":             "environment variable name",
		"${secret:file:relative/path}": "absolute path",
		"${secret:ssm:/a b}":           "printable ASCII",
		"${secret:ssm:/a*b}":           "SSM parameter name",
		// SSM: "For parameters in a hierarchy, you must include a leading
		// forward slash character (/) when you create or reference a
		// parameter" (API Reference, PutParameter/GetParameter, Name).
		// Without it the relay role's grant (parameter/pay/key) and the
		// name asked for would not be the same parameter.
		"${secret:ssm:pay/key}":            "begin with '/'",
		"${secret:ssm:/pay/key/}":          "empty level",
		"${secret:ssm://pay}":              "empty level",
		"${secret:secretsmanager:name#}":   "NAME#KEY",
		"${secret:secretsmanager:arn:x:y}": "not a Secrets Manager",
		"${secret:env:}":                   "1 to",
	}
	for in, want := range bad {
		if _, err := secrets.ParseTemplate(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", in, err, want)
		}
	}
	if _, err := secrets.ParseWhole("x${secret:env:A}"); err == nil {
		t.Error("ParseWhole took literal text beside the reference")
	}
}

func TestExpand(t *testing.T) {
	tm, err := secrets.ParseTemplate("Basic ${secret:env:A}:${secret:env:B}")
	if err != nil {
		t.Fatal(err)
	}
	v := secrets.Values{{Source: "env", Name: "A"}: "u", {Source: "env", Name: "B"}: "p"}
	if s, err := tm.Expand(v); err != nil || s != "Basic u:p" {
		t.Fatalf("Expand = %q, %v", s, err)
	}
}

func writeFile(t *testing.T, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // umask
		t.Fatal(err)
	}
	return p
}

// TestFileSource reads real files and refuses the ones other users could
// read or swap, or that are too large; no error carries the value.
func TestFileSource(t *testing.T) {
	const value = "s3cr3t-VALUE"
	src := secrets.Sources{}
	ctx := context.Background()
	good := writeFile(t, "key", value+"\n", 0o600)
	if v, err := src.Fetch(ctx, secrets.Ref{Source: "file", Name: good}); err != nil || v != value {
		t.Fatalf("0600 file: %q, %v", v, err)
	}
	groupRead := writeFile(t, "key", value, 0o640)
	if _, err := src.Fetch(ctx, secrets.Ref{Source: "file", Name: groupRead}); err != nil {
		t.Errorf("0640 file refused: %v", err)
	}
	cases := map[string]string{
		writeFile(t, "key", value, 0o644):                         "other users read",
		writeFile(t, "key", value, 0o620):                         "other users read or change",
		writeFile(t, "key", strings.Repeat("x", 64<<10+1), 0o600): "larger than",
		writeFile(t, "key", "", 0o600):                            "is empty",
		filepath.Join(t.TempDir(), "missing"):                     "does not exist",
		t.TempDir():                                               "not a regular file",
	}
	for path, want := range cases {
		_, err := src.Fetch(ctx, secrets.Ref{Source: "file", Name: path})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", path, err, want)
			continue
		}
		if strings.Contains(err.Error(), value) {
			t.Errorf("%s: the error shows the value: %v", path, err)
		}
		if !strings.Contains(err.Error(), "${secret:file:"+path+"}") {
			t.Errorf("%s: the error does not name the reference: %v", path, err)
		}
	}
	// A file of another owner: only checkable as root (chown).
	if os.Geteuid() == 0 {
		p := writeFile(t, "key", value, 0o600)
		if err := os.Chown(p, 4242, 4242); err != nil {
			t.Fatal(err)
		}
		if _, err := src.Fetch(ctx, secrets.Ref{Source: "file", Name: p}); err == nil || !strings.Contains(err.Error(), "owned by uid 4242") {
			t.Errorf("foreign owner: %v", err)
		}
	}
}

func TestEnvSource(t *testing.T) {
	t.Setenv("OUTGATE_TEST_SECRET", "v4lue\n")
	t.Setenv("OUTGATE_TEST_EMPTY", "")
	src := secrets.Sources{}
	ctx := context.Background()
	if v, err := src.Fetch(ctx, secrets.Ref{Source: "env", Name: "OUTGATE_TEST_SECRET"}); err != nil || v != "v4lue" {
		t.Fatalf("env: %q, %v", v, err)
	}
	for name, want := range map[string]string{"OUTGATE_TEST_UNSET": "not set", "OUTGATE_TEST_EMPTY": "is empty"} {
		if _, err := src.Fetch(ctx, secrets.Ref{Source: "env", Name: name}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", name, err, want)
		}
	}
}

// lockedBuffer is a log sink a background refresh may write to.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSetRefresh: values are refetched once older than the ttl, in the
// background; a failed refresh keeps the old values and logs the reference,
// never a value.
func TestSetRefresh(t *testing.T) {
	p := writeFile(t, "key", "one", 0o600)
	ref := secrets.Ref{Source: "file", Name: p}
	var mu sync.Mutex
	now := time.Unix(1_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	var log lockedBuffer
	var outcomes []string
	onRefresh := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		outcomes = append(outcomes, fmt.Sprint(err != nil))
	}
	set, err := secrets.Load(context.Background(), secrets.Sources{}, []secrets.Ref{ref, ref},
		secrets.Options{TTL: time.Minute, Now: clock, Log: slog.New(slog.NewJSONHandler(&log, nil)), OnRefresh: onRefresh})
	if err != nil {
		t.Fatal(err)
	}
	if v := set.Current().Values[ref]; v != "one" {
		t.Fatalf("first value %q", v)
	}
	if err := os.WriteFile(p, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	advance(59 * time.Second)
	set.Current()
	set.Wait()
	if v := set.Current().Values[ref]; v != "one" {
		t.Fatalf("refreshed before the ttl: %q", v)
	}
	advance(time.Second)
	if v := set.Current().Values[ref]; v != "one" {
		t.Fatalf("the request waited for the refresh: %q", v)
	}
	set.Wait()
	if v := set.Current().Values[ref]; v != "two" {
		t.Fatalf("after the ttl: %q, want two", v)
	}

	// The source breaks: the old value stays in use.
	if err := os.WriteFile(p, []byte("three-SECRET"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o666); err != nil {
		t.Fatal(err)
	}
	advance(time.Minute)
	set.Current()
	set.Wait()
	if v := set.Current().Values[ref]; v != "two" {
		t.Fatalf("a failed refresh replaced the value: %q", v)
	}
	mu.Lock()
	if got := strings.Join(outcomes, " "); got != "false true" {
		t.Errorf("refresh outcomes (failed?) %q, want one ok then one failure", got)
	}
	mu.Unlock()
	// Within 30 s of a failure no new refresh starts, even past the ttl.
	advance(29 * time.Second)
	set.Current()
	set.Wait()
	mu.Lock()
	if len(outcomes) != 2 {
		t.Errorf("a refresh retried %d times right after a failure", len(outcomes)-2)
	}
	mu.Unlock()
	if l := log.String(); !strings.Contains(l, "secret refresh failed") || !strings.Contains(l, p) || strings.Contains(l, "SECRET") || strings.Contains(l, "two") {
		t.Errorf("log of the failed refresh: %s", l)
	}
}

func TestLoadFailsListingEveryReference(t *testing.T) {
	refs := []secrets.Ref{{Source: "env", Name: "OUTGATE_NOPE_1"}, {Source: "env", Name: "OUTGATE_NOPE_2"}}
	_, err := secrets.Load(context.Background(), secrets.Sources{}, refs, secrets.Options{})
	if err == nil || !strings.Contains(err.Error(), "OUTGATE_NOPE_1") || !strings.Contains(err.Error(), "OUTGATE_NOPE_2") {
		t.Fatalf("Load: %v", err)
	}
	var se *secrets.Error
	if !errors.As(err, &se) {
		t.Errorf("not a *secrets.Error: %T", err)
	}
}

// TestFileSourceRefusesSpecialFiles: a file: reference to something that is
// not a secret file fails at once, naming the reference. A FIFO used to
// hang the open for ever (start, a reload or every later refresh waited on
// a writer, past the 4 s bound on fetches), whether named directly or
// through a symlink; /proc files pass the owner and mode checks (0400,
// owned by the gateway's user) and /proc/self/environ would hand the
// gateway's whole environment, AWS credentials included, to a partner.
func TestFileSourceRefusesSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(fifo, link); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		fifo:                     "not a regular file",
		link:                     "not a regular file",
		"/proc/self/environ":     "kernel",
		"/proc/self/syscall":     "kernel",
		"/proc/self/personality": "kernel",
	}
	for path, want := range cases {
		done := make(chan error, 1)
		go func() {
			_, err := secrets.Sources{}.Fetch(context.Background(), secrets.Ref{Source: "file", Name: path})
			done <- err
		}()
		var err error
		select {
		case err = <-done:
		case <-time.After(time.Minute): // a failure bound, not synchronisation
			// Let the blocked open return so the test can end.
			if w, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
				w.Close()
			}
			t.Fatalf("%s: Fetch still blocked after a minute", path)
		}
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "${secret:file:"+path+"}") {
			t.Errorf("%s: error %v, want one naming the reference with %q", path, err, want)
		}
	}
}
