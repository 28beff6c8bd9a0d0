package deploy

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"

	"github.com/outgate/outgate/internal/attach"
	"github.com/outgate/outgate/internal/awserr"
	"github.com/outgate/outgate/internal/ctxutil"
	"github.com/outgate/outgate/internal/stack"
)

// Deployed is a deployed stack as the CLI reads it back.
type Deployed struct {
	Name       string
	Status     string
	Reason     string
	Outputs    map[string]string
	Resources  map[string]string // logical id -> physical id
	Parameters map[string]string // the stack's parameter values
	Tags       map[string]string
}

// AttachTarget is what attach and detach need of the deployment.
func (d *Deployed) AttachTarget() attach.Deployment {
	return attach.Deployment{Name: d.Name, Relay: d.Outputs[stack.OutputRelayName], ENIMode: d.Outputs[stack.OutputGuardian] != ""}
}

// DescribeStack reads a stack's status, outputs and resources. Outputs a
// stack does not report are filled from its resources where they can be.
func DescribeDeployed(ctx context.Context, c CloudFormation, name string) (*Deployed, error) {
	out, err := c.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(name)})
	if err != nil {
		return nil, awserr.Explain("reading stack "+name+" (cloudformation:DescribeStacks)", err)
	}
	if len(out.Stacks) == 0 {
		return nil, fmt.Errorf("no stack named %s", name)
	}
	s := out.Stacks[0]
	st := &Deployed{Name: name, Status: string(s.StackStatus), Reason: aws.ToString(s.StackStatusReason), Outputs: map[string]string{}, Resources: map[string]string{}}
	for _, o := range s.Outputs {
		st.Outputs[aws.ToString(o.OutputKey)] = aws.ToString(o.OutputValue)
	}
	st.Parameters, st.Tags = map[string]string{}, map[string]string{}
	for _, p := range s.Parameters {
		st.Parameters[aws.ToString(p.ParameterKey)] = aws.ToString(p.ParameterValue)
	}
	for _, t := range s.Tags {
		st.Tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	res, err := c.DescribeStackResources(ctx, &cloudformation.DescribeStackResourcesInput{StackName: aws.String(name)})
	if err != nil {
		return nil, awserr.Explain("reading the stack's resources (cloudformation:DescribeStackResources)", err)
	}
	var subnets []string
	for _, r := range res.StackResources {
		id, phys := aws.ToString(r.LogicalResourceId), aws.ToString(r.PhysicalResourceId)
		if id == "" {
			continue
		}
		st.Resources[id] = phys
		if strings.HasPrefix(id, "PublicSubnet") && !strings.HasSuffix(id, "Routes") || strings.HasPrefix(id, "PrivateSubnet") && !strings.HasSuffix(id, "Routes") {
			subnets = append(subnets, phys)
		}
	}
	fill := func(output, resource string) {
		if st.Outputs[output] == "" && st.Resources[resource] != "" {
			st.Outputs[output] = st.Resources[resource]
		}
	}
	fill(stack.OutputRelayName, "Relay")
	fill(stack.OutputGuardian, "Guardian")
	fill(stack.OutputSecurityGrp, "RelaySecurityGroup")
	if st.Outputs[stack.OutputSubnets] == "" && len(subnets) > 0 {
		st.Outputs[stack.OutputSubnets] = strings.Join(subnets, ",")
	}
	return st, nil
}

// WaitStack follows a stack operation to its end, printing progress: how
// many resources are done, the newest event, the time so far. On failure it
// returns the first failing resource and its reason.
func WaitStack(ctx context.Context, c CloudFormation, name string, total int, poll time.Duration, out io.Writer) error {
	start := time.Now()
	seen := map[string]bool{}
	done := map[string]bool{}
	var firstFailure string
	for {
		ev, err := c.DescribeStackEvents(ctx, &cloudformation.DescribeStackEventsInput{StackName: aws.String(name)})
		if err != nil {
			if isNotExist(err) {
				return nil // deleted
			}
			return awserr.Explain("reading stack events (cloudformation:DescribeStackEvents)", err)
		}
		// Events come newest first; print the new ones oldest first.
		for i := len(ev.StackEvents) - 1; i >= 0; i-- {
			e := ev.StackEvents[i]
			id := aws.ToString(e.EventId)
			if seen[id] || e.Timestamp != nil && e.Timestamp.Before(start.Add(-time.Minute)) {
				continue
			}
			seen[id] = true
			logical, status := aws.ToString(e.LogicalResourceId), string(e.ResourceStatus)
			if logical != name && (strings.HasSuffix(status, "_COMPLETE") || strings.HasSuffix(status, "_SKIPPED")) {
				done[logical] = true
			}
			if strings.HasSuffix(status, "_FAILED") && firstFailure == "" && aws.ToString(e.ResourceStatusReason) != "" &&
				!strings.Contains(aws.ToString(e.ResourceStatusReason), "Resource creation cancelled") {
				firstFailure = fmt.Sprintf("%s (%s): %s", logical, aws.ToString(e.ResourceType), aws.ToString(e.ResourceStatusReason))
			}
			fmt.Fprintf(out, "  [%d/%d %5.0fs] %-40s %s\n", min(len(done), max(total, len(done))), max(total, len(done)), time.Since(start).Seconds(), logical, status)
		}
		st, err := c.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(name)})
		if err != nil {
			if isNotExist(err) {
				return nil
			}
			return awserr.Explain("reading stack "+name, err)
		}
		status := st.Stacks[0].StackStatus
		switch {
		case status == cftypes.StackStatusCreateComplete || status == cftypes.StackStatusUpdateComplete || status == cftypes.StackStatusDeleteComplete:
			fmt.Fprintf(out, "stack %s: %s in %.0fs\n", name, status, time.Since(start).Seconds())
			return nil
		case status == cftypes.StackStatusReviewInProgress && time.Since(start) > 2*time.Minute:
			return fmt.Errorf("stack %s is still in REVIEW_IN_PROGRESS: the change set was not executed", name)
		case strings.HasSuffix(string(status), "_FAILED") || strings.HasSuffix(string(status), "ROLLBACK_COMPLETE"):
			if firstFailure == "" {
				firstFailure = aws.ToString(st.Stacks[0].StackStatusReason)
			}
			return fmt.Errorf("stack %s ended in %s; failing resource %s", name, status, firstFailure)
		}
		if err := ctxutil.Sleep(ctx, poll); err != nil {
			return err
		}
	}
}
