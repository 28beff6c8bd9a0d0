// Package bootstrap writes what an instance-mode EC2 instance runs at first
// boot: the user data script and the systemd unit of `outgate instance run`.
//
// The script is the last place a wrong binary or wrong settings can be
// stopped before the instance takes its AZ's IP and serves: it runs under
// `set -euo pipefail`, checks the binary's SHA-256 against the one `up`
// staged, checks the settings, and only then installs the unit and starts
// it. Any failure exits non-zero before systemctl is called, so the gateway
// never starts; cloud-init records the failure on the console and in
// /var/log/cloud-init-output.log, and the deployment's "no ready instance in
// the AZ" alarm pages, since an instance that never starts never reports
// InstanceReady.
//
// In a stack the script then waits, bounded, for the gateway's /readyz
// and signals the instance's Auto Scaling group, which a rolling update
// waits for before it replaces the next AZ's instance (Input.Groups).
//
// In a CloudFormation template the script goes through Fn::Sub, so values
// may be placeholders such as "${CodeBucket}"; the script itself never
// writes "${" (Check enforces it), so Fn::Sub touches nothing else.
package bootstrap

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"github.com/outgate/outgate/internal/instance"
)

// Layout is where things go on the instance. Production uses
// DefaultLayout; tests run the same script with paths under a temp dir.
type Layout struct {
	Binary       string // the outgate executable
	SettingsFile string // instance.SettingsPath
	UnitFile     string // the systemd unit
	UnitName     string // the unit systemctl starts
}

// DefaultLayout is the layout on an instance.
func DefaultLayout() Layout {
	return Layout{
		Binary:       "/usr/local/bin/outgate",
		SettingsFile: instance.SettingsPath,
		UnitFile:     "/etc/systemd/system/outgate.service",
		UnitName:     "outgate.service",
	}
}

// Input is what the script needs: where the binary is staged (its S3
// location is content-addressed, so the key changes with the binary) and
// what it must hash to, and the settings to write.
type Input struct {
	Region string // the bucket's region, for the aws CLI
	Bucket string // the deployment's staging bucket
	Key    string // the binary's key in it
	SHA256 string // lower-case hex, 64 digits (or a placeholder)
	// Stack and Groups, when Groups is set, make the script tell
	// CloudFormation once the gateway is ready (its /readyz on the admin
	// listener answers 200): cloudformation signal-resource for the group
	// whose subnet the instance is in, so a rolling update
	// (WaitOnResourceSignals) replaces the next AZ's instance only after
	// this one serves, and rolls back instead of spreading a release that
	// never becomes ready. Stack is the stack's name (or a placeholder).
	Stack  string
	Groups []Group
	// Settings becomes /etc/outgate/instance.json. It must validate
	// (instance.Settings.Validate): the script refuses a file in which any
	// field this value needs is empty, which is what an empty stack
	// parameter substituted into it gives.
	Settings instance.Settings
}

// Group is an Auto Scaling group of the stack and the one subnet it
// launches into (each AZ's group has exactly one).
type Group struct {
	Subnet    string // subnet-... or a placeholder such as ${PublicSubnet0}
	LogicalID string // the group's logical id in the stack
}

// placeholder is a CloudFormation Fn::Sub reference (${Name} or ${AWS::Region}).
var placeholder = regexp.MustCompile(`^\$\{[A-Za-z0-9:.]+\}$`)

var (
	hexSHA256 = regexp.MustCompile(`^[0-9a-f]{64}$`)
	// s3Key: what up's content-addressed keys look like (NAME/outgate-...).
	s3Key = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]*$`)
	// bucketName: S3's rule for new bucket names (3-63 of a-z0-9.-).
	bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	region     = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
	stackName  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{0,127}$`)
	subnetID   = regexp.MustCompile(`^subnet-[0-9a-f]{8,17}$`)
	logicalID  = regexp.MustCompile(`^[A-Za-z0-9]{1,255}$`)
)

// heredoc ends the settings block; a settings value cannot contain it
// (json.Marshal never writes a bare newline).
const heredoc = "OUTGATE_SETTINGS_END"

// check returns the value if it is a placeholder or matches re: every
// value lands inside single quotes, so anything else is refused here rather
// than quoted.
func check(name, v string, re *regexp.Regexp) error {
	if placeholder.MatchString(v) || re.MatchString(v) {
		return nil
	}
	return fmt.Errorf("bootstrap: %s %q is not valid", name, v)
}

// UserData renders the first-boot script for the layout.
func UserData(in Input, l Layout) (string, error) {
	var errs []error
	for _, c := range []struct {
		name, v string
		re      *regexp.Regexp
	}{{"region", in.Region, region}, {"bucket", in.Bucket, bucketName}, {"key", in.Key, s3Key}, {"sha256", in.SHA256, hexSHA256}} {
		if err := check(c.name, c.v, c.re); err != nil {
			errs = append(errs, err)
		}
	}
	if len(in.Groups) > 0 {
		if err := check("stack", in.Stack, stackName); err != nil {
			errs = append(errs, err)
		}
		for _, g := range in.Groups {
			if err := check("subnet", g.Subnet, subnetID); err != nil {
				errs = append(errs, err)
			}
			if !logicalID.MatchString(g.LogicalID) {
				errs = append(errs, fmt.Errorf("bootstrap: logical id %q is not valid", g.LogicalID))
			}
		}
	}
	if err := in.Settings.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("bootstrap: %w", err))
	}
	for _, p := range []string{l.Binary, l.SettingsFile, l.UnitFile} {
		if !path.IsAbs(p) || strings.ContainsAny(p, "'$\\\n \"`") {
			errs = append(errs, fmt.Errorf("bootstrap: path %q must be absolute and plain", p))
		}
	}
	if len(errs) > 0 {
		return "", errors.Join(errs...)
	}
	var js bytes.Buffer
	enc := json.NewEncoder(&js)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(in.Settings); err != nil {
		return "", err
	}
	required := requiredKeys(in.Settings)
	signal := ""
	if len(in.Groups) > 0 {
		var cases strings.Builder
		for _, g := range in.Groups {
			fmt.Fprintf(&cases, "  '%s') group='%s' ;;\n", g.Subnet, g.LogicalID)
		}
		signal = strings.NewReplacer("@STACK@", in.Stack, "@CASES@", strings.TrimRight(cases.String(), "\n"),
			"@ADMIN@", in.Settings.AdminListen).Replace(signalScript)
	}

	r := strings.NewReplacer(
		"@REGION@", in.Region, "@BUCKET@", in.Bucket, "@KEY@", in.Key, "@SHA256@", in.SHA256,
		"@BIN@", l.Binary, "@SETTINGS@", l.SettingsFile, "@SETTINGS_DIR@", path.Dir(l.SettingsFile),
		"@UNIT_FILE@", l.UnitFile, "@UNIT_NAME@", l.UnitName, "@UNIT_DIR@", path.Dir(l.UnitFile),
		"@REQUIRED@", strings.Join(required, " "), "@SETTINGS_JSON@", strings.TrimRight(js.String(), "\n"),
		"@EOF@", heredoc, "@UNIT@", strings.TrimRight(Unit(l), "\n"), "@UNIT_EOF@", "OUTGATE_UNIT_END",
		"@SIGNAL@", signal,
	)
	s := r.Replace(script)
	if err := Check(s, in); err != nil {
		return "", err
	}
	return s, nil
}

// Check holds the rendered script to the rule that makes it safe inside
// Fn::Sub: the only "${" in it are the input's own placeholders.
func Check(s string, in Input) error {
	rest := s
	ps := []string{in.Region, in.Bucket, in.Key, in.SHA256, in.Stack}
	for _, g := range in.Groups {
		ps = append(ps, g.Subnet)
	}
	for _, p := range ps {
		if placeholder.MatchString(p) {
			rest = strings.ReplaceAll(rest, p, "")
		}
	}
	st := reflect.ValueOf(in.Settings)
	for i := 0; i < st.NumField(); i++ {
		if v, ok := st.Field(i).Interface().(string); ok && strings.Contains(v, "${") {
			rest = strings.ReplaceAll(rest, v, "")
		}
	}
	if i := strings.Index(rest, "${"); i >= 0 {
		return fmt.Errorf("bootstrap: the script writes %q, which Fn::Sub would take for a reference", rest[i:min(len(rest), i+20)])
	}
	return nil
}

// requiredKeys are the settings keys whose emptiness Validate refuses for
// this value: each string field is emptied in turn. Computed rather than
// listed, so the script's check follows instance.Settings as it grows.
func requiredKeys(s instance.Settings) []string {
	var keys []string
	v := reflect.ValueOf(s)
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		if t.Field(i).Type.Kind() != reflect.String || v.Field(i).String() == "" {
			continue
		}
		c := s
		reflect.ValueOf(&c).Elem().Field(i).SetString("")
		if c.Validate() != nil {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			keys = append(keys, name)
		}
	}
	sort.Strings(keys)
	return keys
}

// script is the user data. Shell variables are written $name, never with
// braces, so Fn::Sub leaves them alone. Every step that can fail does so
// before systemctl runs; the ERR trap says where on the console.
const script = `#!/bin/bash
# outgate instance mode: first boot. Installs the gateway binary (checked
# against its SHA-256), writes its settings (checked), installs its systemd
# unit and starts it. Any failure stops here: the gateway never starts.
set -euo pipefail
umask 022
trap 'echo "outgate bootstrap: FAILED at line $LINENO; the gateway was not started" >&2' ERR
say() { echo "outgate bootstrap: $*" >&2; }

region='@REGION@'
bucket='@BUCKET@'
key='@KEY@'
want='@SHA256@'

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The instance profile's credentials can lag a new role, and a new VPC's
# route to the internet can lag the instance: bounded tries for about five
# minutes, then give up loudly.
tries=0
until AWS_RETRY_MODE=standard AWS_MAX_ATTEMPTS=5 aws s3 cp --only-show-errors --region "$region" "s3://$bucket/$key" "$work/outgate"; do
  tries=$((tries + 1))
  if [ "$tries" -ge 30 ]; then
    say "could not download s3://$bucket/$key"
    exit 1
  fi
  sleep 10
done
got=$(sha256sum "$work/outgate" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
  say "s3://$bucket/$key has SHA-256 $got, expected $want: refusing to run it"
  exit 1
fi

mkdir -p '@SETTINGS_DIR@'
cat > "$work/instance.json" <<'@EOF@'
@SETTINGS_JSON@
@EOF@
# A stack parameter left empty leaves a required setting empty: refuse it
# here, before anything starts. (python3 is on every AMI cloud-init runs on.)
python3 - "$work/instance.json" @REQUIRED@ <<'PYCHECK'
import json, sys
try:
    with open(sys.argv[1]) as f:
        s = json.load(f)
except ValueError as e:
    sys.exit("outgate bootstrap: the settings are not JSON: %s" % e)
missing = [k for k in sys.argv[2:] if not isinstance(s.get(k), str) or not s.get(k)]
if missing:
    sys.exit("outgate bootstrap: settings without " + ", ".join(missing) + " (an empty stack parameter?)")
PYCHECK

install -m 0755 "$work/outgate" '@BIN@'
install -m 0644 "$work/instance.json" '@SETTINGS@'
mkdir -p '@UNIT_DIR@'
cat > "$work/unit" <<'@UNIT_EOF@'
@UNIT@
@UNIT_EOF@
install -m 0644 "$work/unit" '@UNIT_FILE@'

systemctl daemon-reload
systemctl enable --now '@UNIT_NAME@'
say "started @UNIT_NAME@"
@SIGNAL@`

// signalScript ends the user data in a stack: it waits, bounded, for the
// gateway to be ready and tells CloudFormation so (see Input.Groups). The
// gateway runs whatever this part does; a failure here only means no
// update waits on this instance (or one times out and rolls back).
const signalScript = `
trap 'echo "outgate bootstrap: signalling failed at line $LINENO (the gateway runs)" >&2' ERR
# A rolling update waits for this signal before it replaces the next AZ's
# instance: send it only once the gateway serves from the right IP.
token=$(curl -sf --retry 3 --max-time 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 900' http://169.254.169.254/latest/api/token)
imds() { curl -sf --retry 3 --max-time 5 -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/meta-data/$1"; }
id=$(imds instance-id)
mac=$(imds mac)
subnet=$(imds "network/interfaces/macs/$mac/subnet-id")
case "$subnet" in
@CASES@
  *) say "subnet $subnet is none of the stack's groups': not signalling"; exit 1 ;;
esac
tries=0
until curl -sf --max-time 5 -o /dev/null 'http://@ADMIN@/readyz'; do
  tries=$((tries + 1))
  if [ "$tries" -ge 84 ]; then
    say "the gateway is not ready after 14 minutes: not signalling (an update waiting on it rolls back)"
    exit 1
  fi
  sleep 10
done
if AWS_RETRY_MODE=standard AWS_MAX_ATTEMPTS=5 aws cloudformation signal-resource --region "$region" --stack-name '@STACK@' \
    --logical-resource-id "$group" --unique-id "$id" --status SUCCESS; then
  say "ready; signalled $group"
else
  say "ready; no update is waiting on $group (or the signal failed)"
fi
`

// Unit is the systemd unit of the gateway on an instance: its own
// (dynamic) user, no new privileges, only the capability to bind :443, a
// read-only system but for its state directory, restarted whatever ends it.
func Unit(l Layout) string {
	return strings.NewReplacer("@BIN@", l.Binary, "@SETTINGS@", l.SettingsFile).Replace(unit)
}

// The settings file is 0644 and holds no secret (names and ARNs only): the
// dynamic user must read it. DynamicUser=yes also implies ProtectSystem=
// strict, ProtectHome=read-only, PrivateTmp, RemoveIPC and
// RestrictSUIDSGID; they are spelled out so the unit reads the same
// without knowing that. AF_NETLINK is for listing the machine's own
// addresses (Go's net.InterfaceAddrs uses a route netlink socket), which
// the agent does before it serves: without it the gateway never starts.
const unit = `[Unit]
Description=outgate gateway (instance mode)
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStart=@BIN@ instance run --settings @SETTINGS@
User=outgate
Group=outgate
DynamicUser=yes
StateDirectory=outgate
StateDirectoryMode=0700
UMask=0077
NoNewPrivileges=yes
AmbientCapabilities=CAP_NET_BIND_SERVICE
CapabilityBoundingSet=CAP_NET_BIND_SERVICE
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
LimitNOFILE=65536
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
`

// AMIParameter is AWS's public SSM parameter holding the latest Amazon
// Linux 2023 arm64 AMI of each region (the standard AMI: it has the aws CLI
// and python3 the script uses; the "minimal" one does not ship the CLI).
// Source: Amazon Linux 2023 User Guide, "Launching AL2023 using the SSM
// parameter and AWS CLI" (/aws/service/ami-amazon-linux-latest/
// al2023-ami-kernel-default-arm64). The template takes it as a parameter
// of type AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>, so each stack
// update resolves the current AMI.
const AMIParameter = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"
