package deploy

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"

	"github.com/outgate/outgate/internal/awserr"
	"github.com/outgate/outgate/internal/awspage"
	"github.com/outgate/outgate/internal/stack"
)

// Logs finds, keeps and removes a deployment's log groups.
type Logs interface {
	DescribeLogGroups(ctx context.Context, in *cloudwatchlogs.DescribeLogGroupsInput, opts ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.DescribeLogGroupsOutput, error)
	PutRetentionPolicy(ctx context.Context, in *cloudwatchlogs.PutRetentionPolicyInput, opts ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.PutRetentionPolicyOutput, error)
	DeleteLogGroup(ctx context.Context, in *cloudwatchlogs.DeleteLogGroupInput, opts ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.DeleteLogGroupOutput, error)
}

// logGroups are a deployment's log groups, by the stack parameter that
// says whether the stack creates it.
func logGroups(name string) map[string]string {
	return map[string]string{
		stack.ParamCreateRelayLogs:    "/aws/lambda/" + name + stack.RelaySuffix,
		stack.ParamCreateGuardianLogs: "/aws/lambda/" + name + stack.GuardianSuffix,
	}
}

// existingLogGroups returns which of the deployment's log groups exist.
func existingLogGroups(ctx context.Context, api Logs, name string) (map[string]bool, error) {
	// Every page: the prefix also matches the user's own functions named
	// <name>-..., and a group of the deployment's on a later page taken for
	// missing would have the stack create it again, which fails.
	have := map[string]bool{}
	pages := cloudwatchlogs.NewDescribeLogGroupsPaginator(api, &cloudwatchlogs.DescribeLogGroupsInput{LogGroupNamePrefix: aws.String("/aws/lambda/" + name + "-")})
	if err := awspage.Each(ctx, pages, maxLogGroupPages, func(out *cloudwatchlogs.DescribeLogGroupsOutput) {
		for _, g := range out.LogGroups {
			have[aws.ToString(g.LogGroupName)] = true
		}
	}); err != nil {
		return nil, awserr.Explain("looking for the deployment's log groups (logs:DescribeLogGroups)", err)
	}
	return have, nil
}

// maxLogGroupPages bounds that listing (50 groups a page).
const maxLogGroupPages = 200

// logParameters decides, per log group, whether the stack creates it. A
// group the stack already holds stays the stack's; one that exists outside
// it (kept when an earlier stack of this name was deleted) is used as it is,
// with the retention asked for, since creating it again would fail.
func logParameters(ctx context.Context, api Logs, name string, o stack.TemplateOptions, prev *Deployed, say func(string, ...any)) (map[string]string, error) {
	params := map[string]string{}
	var have map[string]bool
	for param, group := range logGroups(name) {
		if param == stack.ParamCreateGuardianLogs && o.Mode != "eni" {
			continue
		}
		logical := map[string]string{stack.ParamCreateRelayLogs: "RelayLogGroup", stack.ParamCreateGuardianLogs: "GuardianLogGroup"}[param]
		if prev != nil && prev.Resources[logical] != "" {
			params[param] = "true"
			continue
		}
		if have == nil {
			var err error
			if have, err = existingLogGroups(ctx, api, name); err != nil {
				return nil, err
			}
		}
		if !have[group] {
			params[param] = "true"
			continue
		}
		params[param] = "false"
		if _, err := api.PutRetentionPolicy(ctx, &cloudwatchlogs.PutRetentionPolicyInput{LogGroupName: aws.String(group),
			RetentionInDays: aws.Int32(int32(o.LogRetentionDays))}); err != nil {
			return nil, awserr.Explain("setting the retention of "+group+" (logs:PutRetentionPolicy)", err)
		}
		say("log group %s exists (kept from an earlier deployment): logging there, kept %s days", group, strconv.Itoa(o.LogRetentionDays))
	}
	return params, nil
}

// DeleteLogGroups removes a deployment's log groups (down --delete-logs).
// The stack keeps them when it is deleted, so this runs after it is gone.
// The caller has checked the name.
func DeleteLogGroups(ctx context.Context, api Logs, name string, out io.Writer) error {
	have, err := existingLogGroups(ctx, api, name)
	if err != nil {
		return err
	}
	// Instance mode's group has a prefix of its own.
	kept, err := api.DescribeLogGroups(ctx, &cloudwatchlogs.DescribeLogGroupsInput{LogGroupNamePrefix: aws.String(stack.InstanceLogGroup(name)), Limit: aws.Int32(5)})
	if err != nil {
		return awserr.Explain("looking for the instances' log group (logs:DescribeLogGroups)", err)
	}
	for _, g := range kept.LogGroups {
		have[aws.ToString(g.LogGroupName)] = true
	}
	for _, group := range []string{logGroups(name)[stack.ParamCreateRelayLogs], logGroups(name)[stack.ParamCreateGuardianLogs], stack.InstanceLogGroup(name)} {
		if !have[group] {
			continue
		}
		if _, err := api.DeleteLogGroup(ctx, &cloudwatchlogs.DeleteLogGroupInput{LogGroupName: aws.String(group)}); err != nil {
			return awserr.Explain("deleting "+group+" (logs:DeleteLogGroup)", err)
		}
		fmt.Fprintf(out, "deleted log group %s\n", group)
	}
	return nil
}
