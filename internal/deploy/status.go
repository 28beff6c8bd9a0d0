package deploy

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/outgate/outgate/internal/attached"
	"github.com/outgate/outgate/internal/awserr"
	"github.com/outgate/outgate/internal/awspage"
	"github.com/outgate/outgate/internal/fleet"
	"github.com/outgate/outgate/internal/stack"
)

// Status is what `outgate status` reports.
type Status struct {
	Name        string       `json:"name"`
	StackStatus string       `json:"stack_status"`
	RelayURL    string       `json:"relay_url,omitempty"`
	Relay       string       `json:"relay_function,omitempty"`
	RelayState  string       `json:"relay_state,omitempty"` // Active, Inactive (Idle), ...
	IPs         []IP         `json:"ips"`
	ENIs        []ENI        `json:"enis"`
	Guardian    *GuardianRun `json:"guardian_last_run,omitempty"`
	Alarms      []Alarm      `json:"alarms,omitempty"`
	// Attached are the functions tagged outgate:attached=<name>, each OK
	// or DRIFTED (its VPC config no longer the relay's) with what differs.
	Attached []attached.Function `json:"attached_functions,omitempty"`
	// Instances are an instance-mode deployment's groups, one per AZ.
	Instances      []fleet.Group `json:"instances,omitempty"`
	NeedsAttention []string      `json:"needs_attention,omitempty"`
}

// ENI is one of the relay's network interfaces.
type ENI struct {
	ID       string `json:"id"`
	Subnet   string `json:"subnet"`
	Status   string `json:"status"`
	PublicIP string `json:"public_ip,omitempty"`
}

// maxENIPages bounds the listing of the relay's ENIs (a few per AZ, and
// EC2's pages hold up to 1,000).
const maxENIPages = 10

// ReadStatus gathers a deployment's state and what needs a human.
func ReadStatus(ctx context.Context, c Clients, name string) (*Status, error) {
	return readStatus(ctx, c, name, "lambda")
}

// readStatus lists the relay's ENIs of interfaceType: "lambda" in AWS; the
// moto tests pass "interface", the only type moto makes.
func readStatus(ctx context.Context, c Clients, name string, interfaceType string) (*Status, error) {
	if err := stack.ValidateName(name); err != nil {
		return nil, err
	}
	st, err := DescribeDeployed(ctx, c.CloudFormation, name)
	if err != nil {
		return nil, err
	}
	s := &Status{Name: name, StackStatus: st.Status, RelayURL: st.Outputs[stack.OutputRelayURL], Relay: st.Outputs[stack.OutputRelayName]}
	if !strings.HasSuffix(st.Status, "_COMPLETE") || strings.Contains(st.Status, "ROLLBACK") {
		s.NeedsAttention = append(s.NeedsAttention, fmt.Sprintf("stack is %s %s", st.Status, st.Reason))
	}
	if s.IPs, err = ListIPs(ctx, c.EC2, name); err != nil {
		return nil, err
	}
	if s.Relay != "" {
		fc, err := c.Lambda.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String(s.Relay)})
		if err != nil {
			s.NeedsAttention = append(s.NeedsAttention, awserr.Explain("reading the relay function (lambda:GetFunctionConfiguration)", err).Error())
		} else {
			s.checkAttached(ctx, c, fc)
			s.RelayState = string(fc.State)
			if fc.StateReasonCode != "" && string(fc.State) != "Active" {
				s.RelayState += " (" + string(fc.StateReasonCode) + ")"
				s.NeedsAttention = append(s.NeedsAttention, "the relay function is "+s.RelayState+": the guardian wakes it within a minute")
			}
		}
		if s.RelayURL == "" {
			if u, err := c.Lambda.GetFunctionUrlConfig(ctx, &lambda.GetFunctionUrlConfigInput{FunctionName: aws.String(s.Relay)}); err == nil {
				s.RelayURL = aws.ToString(u.FunctionUrl)
			}
		}
	}
	instanceMode := isInstance(st)
	if instanceMode {
		gs, err := fleet.Read(ctx, fleet.Clients{AutoScaling: c.AutoScaling, EC2: c.Fleet, CloudWatch: c.CloudWatch}, name, instanceGroups(st))
		if err != nil {
			s.NeedsAttention = append(s.NeedsAttention, err.Error())
		}
		s.Instances = gs
		for _, g := range gs {
			if g.Problem != "" {
				s.NeedsAttention = append(s.NeedsAttention, fmt.Sprintf("%s (%s): %s", g.AZ, g.Name, g.Problem))
			}
		}
	}
	// In eni mode every relay ENI should carry a static IP; in nat mode they
	// sit in private subnets without one and the NAT gateways hold the IPs.
	eniMode := st.Outputs[stack.OutputGuardian] != ""
	if sg := st.Outputs[stack.OutputSecurityGrp]; sg != "" {
		var enis []ec2types.NetworkInterface
		pages := ec2.NewDescribeNetworkInterfacesPaginator(c.EC2, &ec2.DescribeNetworkInterfacesInput{Filters: []ec2types.Filter{
			{Name: aws.String("group-id"), Values: []string{sg}}, {Name: aws.String("interface-type"), Values: []string{interfaceType}}}})
		if err := awspage.Each(ctx, pages, maxENIPages, func(out *ec2.DescribeNetworkInterfacesOutput) {
			enis = append(enis, out.NetworkInterfaces...)
		}); err != nil {
			return nil, awserr.Explain("listing the relay's ENIs (ec2:DescribeNetworkInterfaces)", err)
		}
		for _, n := range enis {
			e := ENI{ID: aws.ToString(n.NetworkInterfaceId), Subnet: aws.ToString(n.SubnetId), Status: string(n.Status)}
			if n.Association != nil {
				e.PublicIP = aws.ToString(n.Association.PublicIp)
			}
			if eniMode && e.Status == "in-use" && e.PublicIP == "" {
				s.NeedsAttention = append(s.NeedsAttention, fmt.Sprintf("ENI %s in %s has no static IP: calls through it fail or leave from no allowlisted address", e.ID, e.Subnet))
			}
			s.ENIs = append(s.ENIs, e)
		}
	}
	if eniMode && c.CloudWatch != nil {
		var err error
		s.Guardian, err = lastGuardianRun(ctx, c.CloudWatch, name)
		switch {
		case err != nil:
			s.NeedsAttention = append(s.NeedsAttention, awserr.Explain("reading the guardian's metrics (cloudwatch:GetMetricStatistics)", err).Error())
		case s.Guardian == nil:
			s.NeedsAttention = append(s.NeedsAttention, "no guardian run in the last 15 minutes: check its schedule and its log")
		case s.Guardian.ENIsWithoutIP > 0:
			s.NeedsAttention = append(s.NeedsAttention, fmt.Sprintf("the guardian's last run found %.0f ENI(s) without a static IP", s.Guardian.ENIsWithoutIP))
		}
	}
	if c.CloudWatch != nil {
		alarms, err := readAlarms(ctx, c.CloudWatch, name)
		if err != nil {
			s.NeedsAttention = append(s.NeedsAttention, awserr.Explain("reading the alarms (cloudwatch:DescribeAlarms)", err).Error())
		}
		s.Alarms = alarms
		for _, a := range alarms {
			if a.State == "ALARM" {
				s.NeedsAttention = append(s.NeedsAttention, "alarm "+a.Name+" is in ALARM: "+a.Reason)
			}
		}
	}
	for _, ip := range s.IPs {
		switch {
		case ip.AttachedTo != "":
		case instanceMode: // the group's row says why
		case eniMode:
			s.NeedsAttention = append(s.NeedsAttention, fmt.Sprintf("IP %s is not attached (normal only in the minute after a deploy or while an ENI is being replaced)", ip.PublicIP))
		case strings.HasSuffix(st.Status, "_COMPLETE"):
			s.NeedsAttention = append(s.NeedsAttention, fmt.Sprintf("IP %s is on no NAT gateway: calls from its AZ cannot leave (check the NAT gateway in the stack's events)", ip.PublicIP))
		}
	}
	return s, nil
}

// checkAttached lists the attached functions against the relay's own VPC
// config, the one they must share.
func (s *Status) checkAttached(ctx context.Context, c Clients, relay *lambda.GetFunctionConfigurationOutput) {
	if c.Tagging == nil || relay.VpcConfig == nil || len(relay.VpcConfig.SecurityGroupIds) != 1 {
		return
	}
	fns, err := attached.Check(ctx, c.Tagging, c.Lambda, attached.Want{Deployment: s.Name, Subnets: relay.VpcConfig.SubnetIds, SecurityGroup: relay.VpcConfig.SecurityGroupIds[0]})
	if err != nil {
		s.NeedsAttention = append(s.NeedsAttention, "checking the attached functions: "+err.Error())
	}
	s.Attached = fns
	for _, f := range fns {
		if f.State == attached.Drifted {
			s.NeedsAttention = append(s.NeedsAttention, fmt.Sprintf("function %s is DRIFTED (%s): put the VPC config in its own code (`outgate attach --name %s --print FORMAT`) or run `outgate attach --name %s --function %s` again",
				f.Name, strings.Join(f.Differs, "; "), s.Name, s.Name, f.Name))
		}
	}
}

// GuardianRun is what the guardian's last run reported (its EMF metrics).
type GuardianRun struct {
	At            time.Time `json:"at"`
	ENIsWithoutIP float64   `json:"enis_without_ip"`
}

// lastGuardianRun reads the newest EnisWithoutIp datapoint of the last 15
// minutes; nil means the guardian has not reported in that time.
func lastGuardianRun(ctx context.Context, c CloudWatch, name string) (*GuardianRun, error) {
	now := time.Now()
	out, err := c.GetMetricStatistics(ctx, &cloudwatch.GetMetricStatisticsInput{
		Namespace: aws.String("Outgate"), MetricName: aws.String("EnisWithoutIp"),
		Dimensions: []cwtypes.Dimension{{Name: aws.String("Deployment"), Value: aws.String(name)}},
		StartTime:  aws.Time(now.Add(-15 * time.Minute)), EndTime: aws.Time(now), Period: aws.Int32(60),
		Statistics: []cwtypes.Statistic{cwtypes.StatisticMaximum},
	})
	if err != nil {
		return nil, err
	}
	var last *GuardianRun
	for _, d := range out.Datapoints {
		if last == nil || aws.ToTime(d.Timestamp).After(last.At) {
			last = &GuardianRun{At: aws.ToTime(d.Timestamp), ENIsWithoutIP: aws.ToFloat64(d.Maximum)}
		}
	}
	return last, nil
}
