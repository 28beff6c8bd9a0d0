// Package attached finds the functions attached to an outgate deployment
// and tells whether each still runs in the deployment's subnets with its
// security group.
//
// A function is attached when it carries the tag outgate:attached=<name>,
// set by `outgate attach` or by the user's own IaC (`attach --print`). Its
// own deploy (sls, sam, cdk, terraform) can drop the VPC config without a
// word; its calls then leave from a random IP and partners refuse them.
// The guardian (every run, with a metric and an alarm) and `outgate status`
// both use this check, so they agree on what "drifted" means.
package attached

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi"
	tagtypes "github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi/types"
	"github.com/aws/smithy-go"
)

// Tag names the deployment a function is attached to.
const Tag = "outgate:attached"

// MaxFunctions bounds the functions checked at once: one
// GetFunctionConfiguration each, every guardian run.
const MaxFunctions = 50

// Tagging finds the tagged functions. The Resource Groups Tagging API is
// used rather than lambda:ListFunctions because it returns only the
// functions with the tag (ListFunctions pages through every function of the
// account, and returns each one's environment variables with it), so the
// cost is bounded by the attached functions, not by the account.
type Tagging interface {
	// tag:GetResources, Resource "*" (it supports no narrower scope).
	GetResources(ctx context.Context, in *resourcegroupstaggingapi.GetResourcesInput, opts ...func(*resourcegroupstaggingapi.Options)) (*resourcegroupstaggingapi.GetResourcesOutput, error)
}

// Lambda reads one function's configuration.
type Lambda interface {
	// lambda:GetFunctionConfiguration on function:*, conditioned on
	// aws:ResourceTag/outgate:attached = the deployment.
	GetFunctionConfiguration(ctx context.Context, in *lambda.GetFunctionConfigurationInput, opts ...func(*lambda.Options)) (*lambda.GetFunctionConfigurationOutput, error)
}

// Want is the deployment's network, which an attached function must use.
type Want struct {
	Deployment    string
	Subnets       []string
	SecurityGroup string
}

// States of an attached function.
const (
	OK      = "OK"
	Drifted = "DRIFTED"
)

// Function is one attached function and how it stands.
type Function struct {
	Name    string   `json:"name"`
	ARN     string   `json:"arn"`
	State   string   `json:"state"` // OK or DRIFTED
	Differs []string `json:"differs,omitempty"`
}

// Check lists the functions tagged for the deployment (at most
// MaxFunctions; more is an error naming the limit, with the first ones
// checked) and compares each one's VPC config with w. A function deleted
// since the tag index saw it is skipped. The error names every failure;
// the functions it could check are returned with it.
func Check(ctx context.Context, t Tagging, l Lambda, w Want) ([]Function, error) {
	arns, err := tagged(ctx, t, w.Deployment)
	var errs []error
	if err != nil {
		if arns == nil {
			return nil, err
		}
		errs = append(errs, err)
	}
	var out []Function
	for _, arn := range arns {
		cfg, err := l.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String(arn)})
		var ae smithy.APIError
		if errors.As(err, &ae) && ae.ErrorCode() == "ResourceNotFoundException" {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("reading %s (lambda:GetFunctionConfiguration): %w", arn, err))
			continue
		}
		f := Function{Name: aws.ToString(cfg.FunctionName), ARN: arn, State: OK}
		var subnets, groups []string
		if v := cfg.VpcConfig; v != nil {
			subnets, groups = v.SubnetIds, v.SecurityGroupIds
		}
		if f.Differs = Compare(subnets, groups, w); len(f.Differs) > 0 {
			f.State = Drifted
		}
		out = append(out, f)
	}
	return out, errors.Join(errs...)
}

// Compare says how a VPC config differs from the deployment's: exactly its
// one security group (Lambda shares the relay's interfaces, and their
// static IPs, only with the same set), and only its subnets (some of them
// are enough).
func Compare(subnets, groups []string, w Want) []string {
	if len(subnets) == 0 {
		return []string{"no VPC config: its calls leave from an IP nobody allowlisted (did its own deploy drop the vpc settings?)"}
	}
	var d []string
	if len(groups) != 1 || groups[0] != w.SecurityGroup {
		d = append(d, fmt.Sprintf("security groups %s, want exactly %s", strings.Join(groups, ","), w.SecurityGroup))
	}
	var foreign []string
	for _, s := range subnets {
		if !slices.Contains(w.Subnets, s) {
			foreign = append(foreign, s)
		}
	}
	if len(foreign) > 0 {
		d = append(d, fmt.Sprintf("subnets %s are not the deployment's (%s)", strings.Join(foreign, ","), strings.Join(w.Subnets, ",")))
	}
	return d
}

// tagged returns the ARNs of the functions tagged for the deployment, at
// most MaxFunctions. Past that it returns the first MaxFunctions and an
// error, so a runaway tag never makes a run unbounded.
func tagged(ctx context.Context, t Tagging, deployment string) ([]string, error) {
	in := &resourcegroupstaggingapi.GetResourcesInput{
		ResourceTypeFilters: []string{"lambda:function"},
		TagFilters:          []tagtypes.TagFilter{{Key: aws.String(Tag), Values: []string{deployment}}},
		ResourcesPerPage:    aws.Int32(MaxFunctions),
	}
	arns := []string{}
	seen := map[string]bool{}
	// Bounded: pages may come back empty with a token, and the same
	// resources may come back on later pages with a new token each time
	// (boto/boto3#2461); a function is counted once, and a token that
	// never ends is an error, not a hang.
	pages := resourcegroupstaggingapi.NewGetResourcesPaginator(t, in)
	for i := 0; pages.HasMorePages(); i++ {
		if i == 20 {
			return arns, fmt.Errorf("tag:GetResources kept paginating for %s=%s", Tag, deployment)
		}
		out, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing the functions tagged %s=%s (tag:GetResources): %w", Tag, deployment, err)
		}
		for _, r := range out.ResourceTagMappingList {
			arn := aws.ToString(r.ResourceARN)
			if seen[arn] {
				continue
			}
			if len(arns) == MaxFunctions {
				return arns, fmt.Errorf("more than %d functions are tagged %s=%s: only the first %d are checked", MaxFunctions, Tag, deployment, MaxFunctions)
			}
			seen[arn] = true
			arns = append(arns, arn)
		}
	}
	slices.Sort(arns)
	return arns, nil
}
