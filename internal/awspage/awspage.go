// Package awspage reads every page of an AWS list or describe call through
// the SDK's own paginator (which passes the tokens and stops on a repeated
// one), with a bound on the pages: a list that never ends is an error
// rather than a loop, and a list cut short is never taken for the whole,
// since outgate decides from it (which log groups exist, which ENIs lack
// an IP, which functions hold the deployment's subnets).
package awspage

import (
	"context"
	"fmt"
)

// Pager is what every paginator of aws-sdk-go-v2 has (NewXPaginator):
// O is the operation's output, Opt the service client's Options.
type Pager[O, Opt any] interface {
	HasMorePages() bool
	NextPage(ctx context.Context, optFns ...func(*Opt)) (O, error)
}

// TooManyPages is the error when a listing has more than its bound.
type TooManyPages struct{ Max int }

func (e TooManyPages) Error() string {
	return fmt.Sprintf("more than %d pages of results: refusing to act on a partial list", e.Max)
}

// Each calls fn with every page, in order, and reads at most max pages: a
// further page is TooManyPages. A failed page is returned as the SDK's
// error (match it with awserr.IsCode, explain it with awserr.Explain).
func Each[O, Opt any](ctx context.Context, p Pager[O, Opt], max int, fn func(O)) error {
	for n := 0; p.HasMorePages(); n++ {
		if n == max {
			return TooManyPages{Max: max}
		}
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		fn(page)
	}
	return nil
}
