package manifest

import (
	"errors"
	"maps"
	"testing"
)

func TestParse_extism(t *testing.T) {
	m, err := Parse([]byte(`block "vowels" {
  module   = "count_vowels.wasm"
  function = "count_vowels"
  config {
    vowels = "aeiouy"
    limit  = 3
  }
}`), "vowels.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if m.Function != "count_vowels" || !maps.Equal(m.Config, map[string]string{"vowels": "aeiouy", "limit": "3"}) {
		t.Errorf("function %q, config %v", m.Function, m.Config)
	}
	for name, src := range map[string]string{
		"empty function": `block "b" { module = "b.wasm" function = "" }`,
		"config value":   `block "b" { module = "b.wasm" config { a = ["x"] } }`,
		"two configs":    `block "b" { module = "b.wasm" config { a = "1" } config { b = "2" } }`,
		"nested config":  `block "b" { module = "b.wasm" config { inner { a = "1" } } }`,
	} {
		if _, err := Parse([]byte(src), "b.hcl"); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}
