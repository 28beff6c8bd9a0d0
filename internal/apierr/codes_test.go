package apierr

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestREADMENamesEveryCode: the README's "Errors you can tell apart" is the
// list users program against, so every code the gateway can send is in it.
// The codes are read from this package's source, so a new one cannot be
// added without the README saying what it means.
func TestREADMENamesEveryCode(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	f, err := parser.ParseFile(token.NewFileSet(), "apierr.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	ast.Inspect(f, func(node ast.Node) bool {
		vs, ok := node.(*ast.ValueSpec)
		if !ok || len(vs.Names) != 1 || !strings.HasPrefix(vs.Names[0].Name, "Code") || len(vs.Values) != 1 {
			return true
		}
		lit, ok := vs.Values[0].(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return true
		}
		code, _ := strconv.Unquote(lit.Value)
		n++
		if !strings.Contains(string(readme), "`"+code+"`") && !strings.Contains(string(readme), " "+code+"`") {
			t.Errorf("README.md does not name the error code %q (%s)", code, vs.Names[0].Name)
		}
		return true
	})
	if n < 20 {
		t.Fatalf("found %d codes in apierr.go: the test no longer reads them", n)
	}
}
