// Package instance runs outgate on an EC2 instance of a deployment in
// instance mode (`outgate instance run`): it claims its AZ's Elastic IP,
// proves its egress IP before it serves, keeps its config in step with the
// deployment's SSM parameter, and has the instance replaced when it cannot
// serve from the right address.
//
// Settings is the contract between the stack (the launch template's user
// data writes it: internal/bootstrap, through internal/stack) and the instance (this package reads it):
// one JSON file, so neither side guesses the other's flags.
package instance

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
)

// SettingsPath is where the user data writes the settings.
const SettingsPath = "/etc/outgate/instance.json"

// Settings are the deployment's facts an instance needs at boot. Field
// names are the JSON keys the user data writes; add a field on both sides.
type Settings struct {
	// Deployment is the deployment (stack) name: the value of the
	// outgate:deployment tag on its IPs, instances and Auto Scaling groups.
	Deployment string `json:"deployment"`
	Region     string `json:"region"`
	// ConfigParameter is the SSM parameter holding the gateway config (the
	// same one the relay reads), polled every ConfigPollSeconds.
	ConfigParameter   string `json:"config_parameter"`
	ConfigPollSeconds int    `json:"config_poll_seconds,omitempty"` // default 60
	// StateDir holds the idempotency store and the config as last read.
	StateDir string `json:"state_dir"` // /var/lib/outgate

	// Listen is the one TLS listener for relay and proxy requests (":443").
	Listen string `json:"listen"`
	// PlainListen, when set, serves relay and proxy in plain HTTP too
	// (off unless `up --plain-http`).
	PlainListen string `json:"plain_listen,omitempty"`
	// AdminListen is loopback only (metrics, /readyz for the agent, and
	// POST /idempotency/clear, none of which takes a key): Validate refuses any
	// other address, so a wrong settings file cannot put them on the
	// instance's public address, whatever the security group allows.
	AdminListen string `json:"admin_listen"` // "127.0.0.1:9901"

	// Domain, when set, gets its certificate from an ACME CA (ACMECA,
	// Let's Encrypt when empty), stored under CertBucket/CertPrefix so a
	// replaced instance reuses it. Without a domain the instance serves a
	// certificate for the deployment's IPs from the deployment's own CA,
	// whose certificate and key are the SSM parameters CACertParameter and
	// CAKeyParameter (SecureString).
	Domain          string `json:"domain,omitempty"`
	ACMECA          string `json:"acme_ca,omitempty"`
	ACMEEmail       string `json:"acme_email,omitempty"`
	CertBucket      string `json:"cert_bucket,omitempty"`
	CertPrefix      string `json:"cert_prefix,omitempty"`
	CACertParameter string `json:"ca_cert_parameter,omitempty"`
	CAKeyParameter  string `json:"ca_key_parameter,omitempty"`

	// LogGroup receives the log, audit and EMF lines (CloudWatch Logs).
	LogGroup string `json:"log_group"`
}

// LoadSettings reads and checks the settings file.
func LoadSettings(path string) (Settings, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Settings{}, fmt.Errorf("reading instance settings: %w", err)
	}
	var s Settings
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return Settings{}, fmt.Errorf("instance settings %s: %w", path, err)
	}
	return s, s.Validate()
}

// Validate reports every missing or contradictory field at once.
func (s Settings) Validate() error {
	var errs []error
	need := func(name, v string) {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is required", name))
		}
	}
	need("deployment", s.Deployment)
	need("region", s.Region)
	need("config_parameter", s.ConfigParameter)
	need("state_dir", s.StateDir)
	need("listen", s.Listen)
	need("admin_listen", s.AdminListen)
	if s.AdminListen != "" {
		if err := loopbackOnly(s.AdminListen); err != nil {
			errs = append(errs, fmt.Errorf("admin_listen %q: %w", s.AdminListen, err))
		}
	}
	need("log_group", s.LogGroup)
	if s.Domain != "" {
		need("cert_bucket (with domain)", s.CertBucket)
	} else {
		need("ca_cert_parameter (without domain)", s.CACertParameter)
		need("ca_key_parameter (without domain)", s.CAKeyParameter)
	}
	if s.ConfigPollSeconds < 0 {
		errs = append(errs, errors.New("config_poll_seconds must not be negative"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("instance settings: %w", errors.Join(errs...))
	}
	return nil
}

// loopbackOnly accepts a host:port whose host is a loopback IP literal (a
// name could resolve elsewhere; an empty host is every interface).
func loopbackOnly(hostport string) error {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Unmap().IsLoopback() {
		return errors.New("must be a loopback address (127.0.0.1:PORT or [::1]:PORT): the admin endpoints take no key")
	}
	return nil
}
