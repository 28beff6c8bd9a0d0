package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads and validates a config file.
func Load(path string) (*Config, error) { return LoadWith(path, nil) }

// LoadWith is Load with override applied to the decoded config before it
// is validated: instance mode sets the listeners from its own settings, so
// the deployment's config (the same SSM parameter as the relay's) works
// unchanged, and the listeners it runs with are the ones checked.
func LoadWith(path string, override func(*Config)) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return ParseWith(data, path, override)
}

// Parse validates a config held in memory; source names it in messages and
// its directory anchors relative paths (ca_files). Parse never panics on any
// input: it is fuzzed.
func Parse(data []byte, source string) (*Config, error) { return ParseWith(data, source, nil) }

// ParseWith is Parse with override (see LoadWith).
func ParseWith(data []byte, source string, override func(*Config)) (*Config, error) {
	e := &Error{Source: source}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			e.add(0, 0, "", "the file is empty")
			return nil, e
		}
		var te *yaml.TypeError
		if errors.As(err, &te) {
			e.addYAML(te.Errors, data)
		} else {
			e.addYAML([]string{strings.TrimPrefix(err.Error(), "yaml: ")}, data)
		}
		return nil, e.sorted()
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		e.add(extra.Line, extra.Column, "", "only one YAML document is allowed")
		return nil, e
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		e.add(root.Line, root.Column, "", "the config must be a mapping of keys (listen:, clients:, ...)")
		return nil, e
	}
	pos := map[string]*yaml.Node{}
	checkKeys(root, reflect.TypeOf(Config{}), "", pos, e)
	if len(e.Problems) > 0 {
		return nil, e.sorted()
	}
	var c Config
	if err := root.Decode(&c); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			e.addYAML(te.Errors, data)
		} else {
			e.add(0, 0, "", "%v", err)
		}
		return nil, e.sorted()
	}
	c.Source = source
	if override != nil {
		override(&c)
	}
	v := validator{c: &c, pos: pos, e: e, dir: dirOf(source)}
	v.validate()
	if err := e.sorted(); err != nil {
		return nil, err
	}
	sortProblems(c.Warnings)
	return &c, nil
}

// checkKeys walks the YAML tree beside the Go type it will decode into,
// reporting keys the type does not have and recording where every value sits.
func checkKeys(n *yaml.Node, t reflect.Type, path string, pos map[string]*yaml.Node, e *Error) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if !isMapping(n) && !isNull(n) && (t.Kind() == reflect.Struct || t.Kind() == reflect.Map) && !reflect.PointerTo(t).Implements(unmarshaler) {
		// Said here, with the path, rather than by the decoder, whose
		// message names Go types ("into config.Upstream").
		e.add(n.Line, n.Column, path, "must be a mapping of keys (key: value lines indented under it), got %s%s", describe(n), misindented(path, t))
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return
		}
		fields := map[string]reflect.Type{}
		var names []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			fields[tag] = f.Type
			names = append(names, tag)
		}
		sort.Strings(names)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			ft, ok := fields[k.Value]
			p := join(path, k.Value)
			if !ok {
				e.add(k.Line, k.Column, path, "unknown key %q%s (known keys: %s)", k.Value, suggest(k.Value, names), strings.Join(names, ", "))
				continue
			}
			pos[p] = val
			checkKeys(val, ft, p, pos, e)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			pos[p] = val
			pos[p+"#key"] = k
			checkKeys(val, t.Elem(), p, pos, e)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			pos[p] = item
			checkKeys(item, t.Elem(), p, pos, e)
		}
	}
}

var unmarshaler = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()

func isMapping(n *yaml.Node) bool { return n.Kind == yaml.MappingNode }
func isNull(n *yaml.Node) bool    { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// describe names what a node holds, in the words of the config's docs.
func describe(n *yaml.Node) string {
	switch {
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Kind == yaml.ScalarNode:
		v := n.Value
		if len(v) > 40 {
			v = v[:40] + "..."
		}
		return fmt.Sprintf("the value %q", v)
	}
	return "something else"
}

// misindented: a key that is one of the fields of the mapping expected in
// its place (upstreams: {url: ...} where upstreams.NAME.url was meant) was
// almost surely meant one level deeper.
func misindented(path string, t reflect.Type) string {
	key := path[strings.LastIndex(path, ".")+1:]
	if t.Kind() != reflect.Struct || key == "" {
		return ""
	}
	for i := 0; i < t.NumField(); i++ {
		if strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0] == key {
			return fmt.Sprintf(": is %q meant to be indented under the entry above it?", key+":")
		}
	}
	return ""
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// suggest returns ` (did you mean "x"?)` for a near miss.
func suggest(got string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := distance(got, n); d < bestD {
			best, bestD = n, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// distance is the Levenshtein distance, for short key names only.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
