package config

import (
	"bytes"
	"fmt"

	"go.yaml.in/yaml/v3"
)

// AddKeyHash returns the config with hash added to the named client's
// key_sha256 (a single value becomes a list), keeping the rest of the file,
// comments included. The result is validated.
func AddKeyHash(data []byte, source, client, hash string) ([]byte, error) {
	return editKeys(data, source, client, func(n *yaml.Node) error {
		item := &yaml.Node{Kind: yaml.ScalarNode, Value: hash, Style: yaml.DoubleQuotedStyle}
		switch n.Kind {
		case yaml.ScalarNode:
			old := *n
			*n = yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{&old, item}}
		case yaml.SequenceNode:
			n.Content = append(n.Content, item)
		default:
			return fmt.Errorf("key_sha256 of %s is neither a string nor a list", client)
		}
		return nil
	})
}

// RemoveKeyHash removes hash from the client's key_sha256. Removing the
// last key is refused: the client would be left unusable yet still listed.
func RemoveKeyHash(data []byte, source, client, hash string) ([]byte, error) {
	return editKeys(data, source, client, func(n *yaml.Node) error {
		if n.Kind != yaml.SequenceNode {
			if n.Value == hash {
				return fmt.Errorf("%s has only this key; remove the client from the config instead", client)
			}
			return fmt.Errorf("%s has no key with hash %s", client, hash)
		}
		var keep []*yaml.Node
		for _, c := range n.Content {
			if c.Value != hash {
				keep = append(keep, c)
			}
		}
		switch {
		case len(keep) == len(n.Content):
			return fmt.Errorf("%s has no key with hash %s", client, hash)
		case len(keep) == 0:
			return fmt.Errorf("%s has only this key; remove the client from the config instead", client)
		}
		n.Content = keep
		return nil
	})
}

func editKeys(data []byte, source, client string, edit func(*yaml.Node) error) ([]byte, error) {
	if _, err := Parse(data, source); err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	root := doc.Content[0]
	var keys *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "clients" {
			continue
		}
		for _, cl := range root.Content[i+1].Content {
			var name string
			var ks *yaml.Node
			for j := 0; j+1 < len(cl.Content); j += 2 {
				switch cl.Content[j].Value {
				case "name":
					name = cl.Content[j+1].Value
				case "key_sha256":
					ks = cl.Content[j+1]
				}
			}
			if name == client {
				keys = ks
			}
		}
	}
	if keys == nil {
		return nil, fmt.Errorf("%s: no client named %q (add it to the config file first)", source, client)
	}
	if err := edit(keys); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if _, err := Parse(out.Bytes(), source); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}
