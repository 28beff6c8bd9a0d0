package deploy

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/outgate/outgate/internal/awserr"
)

// FunctionLister finds functions (lambda:ListFunctions).
type FunctionLister interface {
	ListFunctions(ctx context.Context, in *lambda.ListFunctionsInput, opts ...func(*lambda.Options)) (*lambda.ListFunctionsOutput, error)
}

// maxFunctionPages bounds the listing (50 functions a page).
const maxFunctionPages = 400

// AttachedFunctions lists the functions other than the deployment's own
// that run with its security group: those `attach` moved there (and any
// put there by hand). Their ENIs hold the deployment's subnets and security
// group, so a stack change that removes those, or down, cannot finish
// while they are there. The security group is the test rather than the
// outgate:attached tag because it is what actually holds the resources.
func AttachedFunctions(ctx context.Context, api FunctionLister, sg string, own ...string) ([]string, error) {
	if sg == "" {
		return nil, nil
	}
	var found []string
	in := &lambda.ListFunctionsInput{}
	for page := 0; page < maxFunctionPages; page++ {
		out, err := api.ListFunctions(ctx, in)
		if err != nil {
			return nil, awserr.Explain("looking for functions attached to the deployment (lambda:ListFunctions)", err)
		}
		for _, f := range out.Functions {
			name := aws.ToString(f.FunctionName)
			if f.VpcConfig == nil || !slices.Contains(f.VpcConfig.SecurityGroupIds, sg) || slices.Contains(own, name) {
				continue
			}
			found = append(found, name)
		}
		if aws.ToString(out.NextMarker) == "" {
			slices.Sort(found)
			return found, nil
		}
		in.Marker = out.NextMarker
	}
	return nil, fmt.Errorf("more than %d pages of functions: cannot tell which are attached to the deployment", maxFunctionPages)
}

// detachHint names the functions and the command that frees the
// deployment's subnets of them.
func detachHint(fns []string) string {
	var cmds []string
	for _, f := range fns {
		cmds = append(cmds, "`outgate detach --function "+f+"`")
	}
	return strings.Join(fns, ", ") + " (run " + strings.Join(cmds, ", ") + "; attach them again afterwards)"
}
