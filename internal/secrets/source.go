package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// SSM is the one Parameter Store call made.
// IAM: ssm:GetParameter on the parameter's ARN; kms:Decrypt through SSM for
// a SecureString under a customer-managed key (aws/ssm needs nothing).
type SSM interface {
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, opts ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

// SecretsManager is the one Secrets Manager call made.
// IAM: secretsmanager:GetSecretValue on the secret's ARN; kms:Decrypt
// through Secrets Manager under a customer-managed key.
type SecretsManager interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// MaxValue bounds one secret's value: a certificate chain or a key fits,
// and a reference to a wrong, large file fails instead of filling memory.
const MaxValue = 64 << 10

// Sources reach the places secrets live. The AWS clients are made on first
// use, so a config with no AWS reference needs no AWS credentials.
type Sources struct {
	// LookupEnv reads an environment variable (os.LookupEnv if nil).
	LookupEnv func(string) (string, bool)
	// SSM and SecretsManager return the clients (nil: that source is not
	// available here, and references to it fail).
	SSM            func(context.Context) (SSM, error)
	SecretsManager func(context.Context) (SecretsManager, error)
}

// Error is a reference that could not be resolved. Its text names the
// reference and why, never a value.
type Error struct {
	Ref Ref
	Msg string
	// Unreachable: the source did not answer (no credentials, no route),
	// so whether the secret exists is unknown. config check reports that
	// as a warning; start and reload fail on it like on any error.
	Unreachable bool
	Err         error
}

func (e *Error) Error() string {
	s := e.Ref.String() + ": " + e.Msg
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Fetch resolves one reference.
func (s Sources) Fetch(ctx context.Context, r Ref) (string, error) {
	var v string
	var err error
	switch r.Source {
	case SourceEnv:
		v, err = s.env(r)
	case SourceFile:
		v, err = s.file(r)
	case SourceSSM:
		v, err = s.ssm(ctx, r)
	case SourceSecretsManager:
		v, err = s.secretsManager(ctx, r)
	default:
		err = &Error{Ref: r, Msg: "unknown source"}
	}
	if err != nil {
		return "", err
	}
	if v == "" {
		return "", &Error{Ref: r, Msg: "is empty"}
	}
	if len(v) > MaxValue {
		return "", &Error{Ref: r, Msg: fmt.Sprintf("is larger than %d bytes", MaxValue)}
	}
	return v, nil
}

func (s Sources) env(r Ref) (string, error) {
	look := s.LookupEnv
	if look == nil {
		look = os.LookupEnv
	}
	v, ok := look(r.Name)
	if !ok {
		return "", &Error{Ref: r, Msg: "the environment variable is not set"}
	}
	return trimNewline(v), nil
}

// trimNewline drops one trailing newline, which editors and `echo` add to
// files and variables and which no header value can hold.
func trimNewline(v string) string {
	v = strings.TrimSuffix(v, "\n")
	return strings.TrimSuffix(v, "\r")
}

// file reads a secret file, refusing one that others could read or replace:
// it must be a regular file, owned by the gateway's user or root, with no
// permission for other users and no write permission for its group.
//
// It is opened non-blocking: opening a FIFO for reading otherwise waits for
// a writer, for ever (the open cannot be cancelled, so the bound on a round
// of fetches would not end it); non-blocking, the open returns and the
// file's type refuses it. Regular files ignore O_NONBLOCK.
func (s Sources) file(r Ref) (string, error) {
	f, err := os.OpenFile(r.Name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		msg := "cannot open the file"
		if errors.Is(err, os.ErrNotExist) {
			msg = "the file does not exist"
		} else if errors.Is(err, os.ErrPermission) {
			msg = "the file is not readable by the gateway's user"
		}
		return "", &Error{Ref: r, Msg: msg}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", &Error{Ref: r, Msg: "cannot stat the file", Err: err}
	}
	if !fi.Mode().IsRegular() {
		return "", &Error{Ref: r, Msg: "is not a regular file"}
	}
	if perm := fi.Mode().Perm(); perm&0o007 != 0 || perm&0o020 != 0 {
		return "", &Error{Ref: r, Msg: fmt.Sprintf("mode %04o lets other users read or change it: chmod o-rwx,g-w", perm)}
	}
	if uid, ok := ownerUID(fi); ok {
		euid := os.Geteuid()
		if int(uid) != euid && uid != 0 {
			return "", &Error{Ref: r, Msg: fmt.Sprintf("is owned by uid %d, neither the gateway's user (%d) nor root", uid, euid)}
		}
	}
	// Kernel files (/proc) report size 0, whatever they hold, and reading
	// one may block or take what it returns from others (/proc/kmsg): an
	// empty size is refused before any read. A real empty file has no
	// secret in it either.
	if fi.Size() == 0 {
		return "", &Error{Ref: r, Msg: "is empty, or a kernel file (/proc) whose size is not what it holds"}
	}
	if fi.Size() > MaxValue {
		return "", &Error{Ref: r, Msg: fmt.Sprintf("the file is larger than %d bytes", MaxValue)}
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxValue+1))
	if err != nil {
		return "", &Error{Ref: r, Msg: "cannot read the file", Err: err}
	}
	if len(b) > MaxValue {
		return "", &Error{Ref: r, Msg: fmt.Sprintf("the file is larger than %d bytes", MaxValue)}
	}
	// A regular file holds the bytes its size says. Kernel files (/proc,
	// /sys) do not: they report 0 or 4096 and make their content up when
	// read, and some pass the checks above (/proc/self/environ is 0400 and
	// the gateway's own, and holds its AWS credentials). A size that
	// changed during the read is a file being rewritten: the next refresh
	// reads it whole.
	if int64(len(b)) != fi.Size() {
		return "", &Error{Ref: r, Msg: fmt.Sprintf("read %d bytes where the file's size is %d: a kernel file (/proc, /sys) or one being rewritten, not a secret file", len(b), fi.Size())}
	}
	return trimNewline(string(b)), nil
}

func (s Sources) ssm(ctx context.Context, r Ref) (string, error) {
	if s.SSM == nil {
		return "", &Error{Ref: r, Msg: "SSM is not available here", Unreachable: true}
	}
	c, err := s.SSM(ctx)
	if err != nil {
		return "", &Error{Ref: r, Msg: "no SSM client", Unreachable: true, Err: err}
	}
	out, err := c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(r.Name), WithDecryption: aws.Bool(true)})
	if err != nil {
		var nf *ssmtypes.ParameterNotFound
		if errors.As(err, &nf) {
			return "", &Error{Ref: r, Msg: "no such SSM parameter"}
		}
		return "", &Error{Ref: r, Msg: "reading the SSM parameter", Unreachable: unreachable(err), Err: err}
	}
	if out.Parameter == nil || out.Parameter.Value == nil {
		return "", &Error{Ref: r, Msg: "the SSM parameter has no value"}
	}
	if out.Parameter.Type != ssmtypes.ParameterTypeSecureString {
		return "", &Error{Ref: r, Msg: fmt.Sprintf("the SSM parameter is a %s, not a SecureString: store secrets encrypted", out.Parameter.Type)}
	}
	return *out.Parameter.Value, nil
}

func (s Sources) secretsManager(ctx context.Context, r Ref) (string, error) {
	if s.SecretsManager == nil {
		return "", &Error{Ref: r, Msg: "Secrets Manager is not available here", Unreachable: true}
	}
	c, err := s.SecretsManager(ctx)
	if err != nil {
		return "", &Error{Ref: r, Msg: "no Secrets Manager client", Unreachable: true, Err: err}
	}
	out, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(r.Name)})
	if err != nil {
		var nf *smtypes.ResourceNotFoundException
		if errors.As(err, &nf) {
			return "", &Error{Ref: r, Msg: "no such secret (or no current version)"}
		}
		return "", &Error{Ref: r, Msg: "reading the secret", Unreachable: unreachable(err), Err: err}
	}
	var v string
	switch {
	case out.SecretString != nil:
		v = *out.SecretString
	case out.SecretBinary != nil:
		v = string(out.SecretBinary)
	}
	if r.Key == "" {
		return v, nil
	}
	// encoding/json's errors quote parts of the input: none is passed on.
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(v), &obj); err != nil {
		return "", &Error{Ref: r, Msg: "the secret is not a JSON object, so #" + r.Key + " cannot be taken from it"}
	}
	raw, ok := obj[r.Key]
	if !ok {
		return "", &Error{Ref: r, Msg: "the secret's JSON has no key " + r.Key}
	}
	var str string
	if err := json.Unmarshal(raw, &str); err != nil {
		return "", &Error{Ref: r, Msg: "the secret's JSON value at " + r.Key + " is not a string"}
	}
	return str, nil
}

// unreachable tells a failure to reach AWS at all (no credentials, no
// route, a timeout) from an answer (access denied, a KMS error): only an
// answer proves the config wrong.
func unreachable(err error) bool {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) && re.HTTPStatusCode() > 0 {
		return false
	}
	return true
}
