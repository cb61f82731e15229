// Package chaosmeshcrds holds Chaos Mesh's CustomResourceDefinitions, as
// Chaos Mesh's chart installs them, for tests that install Chaos Mesh's
// kinds without Chaos Mesh itself.
package chaosmeshcrds

import (
	"bytes"
	"embed"
	"strings"
)

//go:embed crds/*.yaml
var files embed.FS

// CRDs returns every CRD of crds/ as one YAML stream, for deploy.Apply.
func CRDs() ([]byte, error) {
	entries, err := files.ReadDir("crds")
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	for _, e := range entries {
		b, err := files.ReadFile("crds/" + e.Name())
		if err != nil {
			return nil, err
		}
		out.WriteString("---\n")
		out.Write(b)
	}
	return out.Bytes(), nil
}

// Names are the CRDs' names, such as stresschaos.chaos-mesh.org, from the
// files' names.
func Names() ([]string, error) {
	entries, err := files.ReadDir("crds")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		group, plural, ok := strings.Cut(strings.TrimSuffix(e.Name(), ".yaml"), "_")
		if ok {
			out = append(out, plural+"."+group)
		}
	}
	return out, nil
}
