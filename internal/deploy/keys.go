package deploy

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/outgate/outgate/internal/config"
	"github.com/outgate/outgate/internal/keys"
)

// DeployedConfig reads the config a deployment's relay uses.
func DeployedConfig(ctx context.Context, c SSM, name string) ([]byte, error) {
	out, err := c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(ConfigParameter(name)), WithDecryption: aws.Bool(true)})
	if err != nil {
		return nil, awsError("reading the deployed config (ssm:GetParameter)", err)
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
	if err := ValidName(k.Name); err != nil {
		return err
	}
	data, source := []byte(nil), "ssm:"+ConfigParameter(k.Name)
	var err error
	if k.File != "" {
		data, source = nil, k.File
		data, err = os.ReadFile(k.File)
	} else {
		data, err = DeployedConfig(ctx, c, k.Name)
	}
	if err != nil {
		return err
	}
	out, err := edit(data, source)
	if err != nil {
		return err
	}
	if _, err := c.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(ConfigParameter(k.Name)), Value: aws.String(string(out)),
		Type: ssmtypes.ParameterTypeSecureString, Overwrite: aws.Bool(true)}); err != nil {
		return awsError("storing the config (ssm:PutParameter)", err)
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

// RevokeKey removes a key (by its hash) from a client of a deployment.
func RevokeKey(ctx context.Context, c SSM, k KeyEdit, hash string) error {
	return k.apply(ctx, c, func(data []byte, source string) ([]byte, error) {
		return config.RemoveKeyHash(data, source, k.Client, hash)
	})
}
