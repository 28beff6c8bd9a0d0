// Package deployedconfig is a deployment's gateway config where its relay
// reads it, an SSM parameter: reading it, adding and revoking client keys in
// it (and in the config file `up` deploys from), and the record of revoked
// keys that `up` checks a config against.
package deployedconfig

import (
	"context"
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/outgate/outgate/internal/awserr"
	"github.com/outgate/outgate/internal/config"
	"github.com/outgate/outgate/internal/keys"
	"github.com/outgate/outgate/internal/stack"
)

// SSM stores the gateway config the relay reads.
type SSM interface {
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, opts ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
	PutParameter(ctx context.Context, in *ssm.PutParameterInput, opts ...func(*ssm.Options)) (*ssm.PutParameterOutput, error)
	// Reading the revoked keys' record (ssm:GetParametersByPath).
	GetParametersByPath(ctx context.Context, in *ssm.GetParametersByPathInput, opts ...func(*ssm.Options)) (*ssm.GetParametersByPathOutput, error)
}

// Parameter is the SSM parameter holding a deployment's gateway config.
func Parameter(name string) string { return "/outgate/" + name + "/config" }

// Read reads the config a deployment's relay uses.
func Read(ctx context.Context, c SSM, name string) ([]byte, error) {
	out, err := c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(Parameter(name)), WithDecryption: aws.Bool(true)})
	if err != nil {
		return nil, awserr.Explain("reading the deployed config (ssm:GetParameter)", err)
	}
	return []byte(aws.ToString(out.Parameter.Value)), nil
}

// KeyEdit changes a deployment's client keys. The config file, when given,
// is the source of truth: it is edited too, so the next `up` keeps the
// change; without it only the deployed copy changes (and `up` from an
// unedited file would undo it).
type KeyEdit struct {
	Name, Client string
	File         string // the config file `up` deploys from, or ""
}

func (k KeyEdit) apply(ctx context.Context, c SSM, edit func(data []byte, source string) ([]byte, error)) error {
	if err := stack.ValidateName(k.Name); err != nil {
		return err
	}
	data, source := []byte(nil), "ssm:"+Parameter(k.Name)
	var err error
	if k.File != "" {
		data, source = nil, k.File
		data, err = os.ReadFile(k.File)
	} else {
		data, err = Read(ctx, c, k.Name)
	}
	if err != nil {
		return err
	}
	out, err := edit(data, source)
	if err != nil {
		return err
	}
	if _, err := c.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(Parameter(k.Name)), Value: aws.String(string(out)),
		Type: ssmtypes.ParameterTypeSecureString, Overwrite: aws.Bool(true)}); err != nil {
		return awserr.Explain("storing the config (ssm:PutParameter)", err)
	}
	if k.File != "" {
		if err := os.WriteFile(k.File, out, 0o600); err != nil {
			return fmt.Errorf("the deployment has the change, but writing %s failed: %w (add the change by hand before the next up)", k.File, err)
		}
	}
	return nil
}

// AddKey makes a new key for a client of a deployment and returns it; the
// old keys keep working until revoked (rotation without downtime).
func AddKey(ctx context.Context, c SSM, k KeyEdit) (key, hash string, err error) {
	key, hash = keys.New()
	err = k.apply(ctx, c, func(data []byte, source string) ([]byte, error) {
		return config.AddKeyHash(data, source, k.Client, hash)
	})
	return key, hash, err
}

// RevokeKey removes a key (by its hash) from a client of a deployment, and
// records the revocation so that no later `up` brings the key back: a
// config file that still holds it (revoked without --config, or an old
// copy) is refused until the key is taken out of it.
func RevokeKey(ctx context.Context, c SSM, k KeyEdit, hash string) error {
	if err := k.apply(ctx, c, func(data []byte, source string) ([]byte, error) {
		return config.RemoveKeyHash(data, source, k.Client, hash)
	}); err != nil {
		return err
	}
	// One parameter per revoked key: no size limit to outgrow, and nothing
	// to drop (a dropped record would let the key come back).
	if _, err := c.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(revokedParameter(k.Name, hash)), Value: aws.String(k.Client),
		Type: ssmtypes.ParameterTypeString, Overwrite: aws.Bool(true), Description: aws.String("outgate: a revoked key's hash; up refuses a config that holds it")}); err != nil {
		return awserr.Explain("the key is revoked, but recording it failed, so an up from a file that still has it would bring it back (ssm:PutParameter)", err)
	}
	return nil
}

// revokedParameter records one revoked key of a deployment.
func revokedParameter(name, hash string) string { return revokedPath(name) + hash }

func revokedPath(name string) string { return "/outgate/" + name + "/revoked/" }

// maxRevokedPages bounds the read of the revocation record (10 a page).
const maxRevokedPages = 1000

// CheckRevoked refuses a config that holds a key revoked for the
// deployment, naming the client and the key.
func CheckRevoked(ctx context.Context, c SSM, name string, data []byte) error {
	cfg, err := config.Parse(data, "the config")
	if err != nil {
		return err
	}
	revoked := map[string]bool{}
	in := &ssm.GetParametersByPathInput{Path: aws.String(strings.TrimSuffix(revokedPath(name), "/"))}
	for page := 0; ; page++ {
		if page == maxRevokedPages {
			return fmt.Errorf("more than %d pages of revoked keys under %s: cannot check the config against them", maxRevokedPages, revokedPath(name))
		}
		out, err := c.GetParametersByPath(ctx, in)
		if err != nil {
			return awserr.Explain("reading the deployment's revoked keys (ssm:GetParametersByPath)", err)
		}
		for _, p := range out.Parameters {
			revoked[strings.ToLower(path.Base(aws.ToString(p.Name)))] = true
		}
		if aws.ToString(out.NextToken) == "" {
			break
		}
		in.NextToken = out.NextToken
	}
	for _, cl := range cfg.Clients {
		for _, h := range cl.KeySHA256 {
			if revoked[strings.ToLower(h)] {
				return fmt.Errorf("the config gives client %s the key %s..., which was revoked (outgate keys revoke); deploying it would bring the key back, so nothing was changed: remove that key_sha256 from the file", cl.Name, h[:min(12, len(h))])
			}
		}
	}
	return nil
}
