package awspage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"

	"github.com/outgate/outgate/internal/testutil"
)

// TestEachReadsEveryPageUpToItsBound drives the SDK's own paginator
// against moto_server, which pages DescribeLogGroups by its limit: with
// one group a page, Each hands over all three pages in order, and a bound
// of two pages is an error, never the first two pages taken for the list.
func TestEachReadsEveryPageUpToItsBound(t *testing.T) {
	testutil.Moto(t)
	ctx := context.Background()
	ac, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	logs := cloudwatchlogs.NewFromConfig(ac)
	var want []string
	for i := range 3 {
		name := fmt.Sprintf("/aws/lambda/pager-%d", i)
		if _, err := logs.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String(name)}); err != nil {
			t.Fatal(err)
		}
		want = append(want, name)
	}
	list := func(max int) ([]string, int, error) {
		var got []string
		pages := 0
		p := cloudwatchlogs.NewDescribeLogGroupsPaginator(logs, &cloudwatchlogs.DescribeLogGroupsInput{
			LogGroupNamePrefix: aws.String("/aws/lambda/pager-"), Limit: aws.Int32(1)})
		err := Each(ctx, p, max, func(o *cloudwatchlogs.DescribeLogGroupsOutput) {
			pages++
			for _, g := range o.LogGroups {
				got = append(got, aws.ToString(g.LogGroupName))
			}
		})
		return got, pages, err
	}
	got, pages, err := list(3)
	if err != nil || pages != 3 || !slices.Equal(got, want) {
		t.Fatalf("Each over 3 pages of 1 = %v in %d pages, %v; want %v in 3 pages", got, pages, err, want)
	}
	_, pages, err = list(2)
	var tooMany TooManyPages
	if !errors.As(err, &tooMany) || tooMany.Max != 2 || pages != 2 {
		t.Fatalf("Each with a bound of 2 pages over 3 = %v after %d pages; want TooManyPages{2} after 2", err, pages)
	}
}
