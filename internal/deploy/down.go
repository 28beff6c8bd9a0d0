package deploy

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/outgate/outgate/internal/awserr"
	"github.com/outgate/outgate/internal/stack"
)

// Down deletes the stack and keeps the Elastic IPs (they live outside it),
// returning them so the user sees what is still allocated and billed.
func Down(ctx context.Context, c Clients, name string, poll time.Duration, out io.Writer) ([]IP, error) {
	if err := stack.ValidateName(name); err != nil {
		return nil, err
	}
	exists, err := stackExistsAny(ctx, c.CloudFormation, name)
	if err != nil {
		return nil, err
	}
	if exists {
		// Functions attached to the deployment hold its subnets and security
		// group through their ENIs: CloudFormation would try to delete those
		// for up to an hour and fail, leaving a half-deleted stack. outgate
		// does not move a user's function on its own (where to is the user's
		// choice: detach restores where it was), so it stops here.
		if st, err := DescribeDeployed(ctx, c.CloudFormation, name); err == nil {
			fns, err := AttachedFunctions(ctx, c.Lambda, st.Resources["RelaySecurityGroup"], st.Resources["Relay"], st.Resources["Guardian"])
			if err != nil {
				return nil, err
			}
			if len(fns) > 0 {
				return nil, fmt.Errorf("%w: %s; nothing was deleted", ErrAttached{Deployment: name, Functions: fns}, detachHint(fns))
			}
		}
		if _, err := c.CloudFormation.DeleteStack(ctx, &cloudformation.DeleteStackInput{StackName: aws.String(name)}); err != nil {
			return nil, awserr.Explain("deleting stack "+name+" (cloudformation:DeleteStack)", err)
		}
		if err := WaitStack(ctx, c.CloudFormation, name, 0, poll, out); err != nil {
			return nil, err
		}
	} else {
		fmt.Fprintf(out, "no stack named %s\n", name)
	}
	return ListIPs(ctx, c.EC2, name)
}

// ErrAttached: functions attached to the deployment stop a change that
// would pull its subnets or security group from under them.
type ErrAttached struct {
	Deployment string
	Functions  []string
}

func (e ErrAttached) Error() string {
	return fmt.Sprintf("functions attached to deployment %s use its subnets and security group", e.Deployment)
}

// lookupStack returns the stack, or nil when there is none by that name.
func lookupStack(ctx context.Context, c CloudFormation, name string) (*cftypes.Stack, error) {
	out, err := c.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(name)})
	if err != nil {
		if isNotExist(err) {
			return nil, nil
		}
		return nil, awserr.Explain("looking up the stack (cloudformation:DescribeStacks)", err)
	}
	if len(out.Stacks) == 0 {
		return nil, nil
	}
	return &out.Stacks[0], nil
}

// stackExistsAny reports whether a stack by that name exists, in any state.
func stackExistsAny(ctx context.Context, c CloudFormation, name string) (bool, error) {
	st, err := lookupStack(ctx, c, name)
	return st != nil, err
}
