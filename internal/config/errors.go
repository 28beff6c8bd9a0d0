package config

import (
	"fmt"
	"go.yaml.in/yaml/v3"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a config file, at a place in it.
type Problem struct {
	Line, Column int
	Path         string // key path such as clients[1].hosts[0]; empty for the file
	Msg          string
}

// Error lists every problem found in one config file.
type Error struct {
	Source   string
	Problems []Problem
}

func (e *Error) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		p.write(&b, e.Source, "")
	}
	return b.String()
}

// Warning formats one of Config.Warnings as "file:line:col: warning: path: msg".
func (c *Config) Warning(p Problem) string {
	var b strings.Builder
	p.write(&b, c.Source, "warning: ")
	return b.String()
}

func (p Problem) write(b *strings.Builder, source, kind string) {
	b.WriteString(source)
	if p.Line > 0 {
		fmt.Fprintf(b, ":%d:%d", p.Line, p.Column)
	}
	b.WriteString(": ")
	b.WriteString(kind)
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
}

func (e *Error) add(line, col int, path, format string, args ...any) {
	e.Problems = append(e.Problems, Problem{Line: line, Column: col, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (e *Error) sorted() error {
	if len(e.Problems) == 0 {
		return nil
	}
	sortProblems(e.Problems)
	return e
}

func sortProblems(ps []Problem) {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
}

var (
	yamlLine     = regexp.MustCompile(`^line (\d+): (.*)$`)
	yamlUnmarsh  = regexp.MustCompile("^cannot unmarshal !!(\\w+) (`[^`]*` )?into (.+)$")
	yamlGotWords = map[string]string{"str": "a string", "seq": "a list", "map": "a mapping", "int": "a number",
		"float": "a number", "bool": "true or false", "null": "nothing", "timestamp": "a date"}
)

// addYAML turns the YAML library's "line N: msg" strings into problems:
// the column is where that line's text starts, and the library's terms
// (its parser's states, Go type names) become what to do about them.
func (e *Error) addYAML(msgs []string, data []byte) {
	lines := strings.Split(string(data), "\n")
	for _, m := range msgs {
		m = strings.TrimPrefix(m, "yaml: ")
		g := yamlLine.FindStringSubmatch(m)
		if g == nil {
			e.add(0, 0, "", "%s", plainYAML(m, ""))
			continue
		}
		n, _ := strconv.Atoi(g[1])
		if l := firstFailingLine(data, g[2]); l > n {
			n = l
		}
		col, text := 1, ""
		if n >= 1 && n <= len(lines) {
			text = lines[n-1]
			col = 1 + len(text) - len(strings.TrimLeft(text, " "))
		}
		e.add(n, col, "", "%s", plainYAML(g[2], text))
	}
}

// plainYAML explains the YAML library's messages that name its parser's
// states or Go types; others pass as they are.
func plainYAML(msg, line string) string {
	switch {
	case strings.Contains(line, "\t") && strings.Contains(msg, "cannot start any token"):
		return "a tab: YAML indents with spaces only"
	case msg == "mapping values are not allowed in this context":
		return "a key here is indented deeper than the key above it (or a value holds an unquoted ': ', which needs quotes)"
	case strings.HasPrefix(msg, "did not find expected key"):
		return "this line's indentation does not line up with the keys above it"
	case strings.HasPrefix(msg, "did not find expected '-' indicator"):
		return "this line's indentation does not line up with the list items above it"
	}
	if g := yamlUnmarsh.FindStringSubmatch(msg); g != nil {
		got := yamlGotWords[g[1]]
		if got == "" {
			got = "a value"
		}
		if v := strings.Trim(g[2], "` "); v != "" {
			got += " " + strconv.Quote(v)
		}
		return "expected " + goTypeWords(g[3]) + ", got " + got
	}
	return msg
}

// goTypeWords names a Go type the decoder expected in the config's terms.
func goTypeWords(t string) string {
	switch {
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["), strings.HasPrefix(t, "config."), strings.HasPrefix(t, "*config."):
		return "a mapping of keys"
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"), strings.HasPrefix(t, "float"):
		return "a number"
	case t == "bool":
		return "true or false"
	case t == "string":
		return "a string"
	}
	return "another kind of value"
}

// firstFailingLine finds the line a YAML syntax error is really on. The
// parser reports some errors ("did not find expected key") at the start of
// the block it was reading, which can be many lines above the over- or
// under-indented key. The first prefix of the file that fails with the same
// message ends on the line that broke it. Bounded: small files only (a
// config is a few hundred lines; at most 1,000 parses of 64 KiB), and 0
// when no prefix shows it.
func firstFailingLine(data []byte, msg string) int {
	const maxLines, maxBytes = 1000, 64 << 10
	lines := strings.SplitAfter(string(data), "\n")
	if len(lines) > maxLines || len(data) > maxBytes {
		return 0
	}
	prefix := 0
	for i, l := range lines {
		prefix += len(l)
		var n yaml.Node
		err := yaml.Unmarshal(data[:prefix], &n)
		if err == nil {
			continue
		}
		if g := yamlLine.FindStringSubmatch(strings.TrimPrefix(err.Error(), "yaml: ")); g != nil && g[2] == msg {
			return i + 1
		}
	}
	return 0
}
