//go:build sandbox

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	k8sschema "k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"faultline.dev/faultline/deploy"
	"faultline.dev/faultline/experiments/manifest"
	"faultline.dev/faultline/experiments/schema"
	"faultline.dev/faultline/sandbox/sandboxtest"
)

func init() { runTests = sandboxtest.Main }

// boundary is a document one value away from a base document.
type boundary struct {
	name string
	doc  map[string]any
}

// boundaries walks doc alongside its schema s and, for every bounded field
// the document holds, makes the documents at and across its bounds: each
// minimum−1, minimum, maximum and maximum+1 (of a number, a string's
// length, a list's items), each enum value and a non-member, and a string
// that matches no pattern.
func boundaries(kind string, doc map[string]any, s apiextensionsv1.JSONSchemaProps) []boundary {
	var out []boundary
	var walk func(path []any, v any, s apiextensionsv1.JSONSchemaProps)
	at := func(path []any, what string, value any) {
		c := runtime.DeepCopyJSON(doc)
		setAt(c, path, value)
		out = append(out, boundary{fmt.Sprintf("%s %s: %s", kind, pathString(path), what), c})
	}
	walk = func(path []any, v any, s apiextensionsv1.JSONSchemaProps) {
		switch v := v.(type) {
		case map[string]any:
			for _, k := range sortedKeys(v) {
				if p, ok := s.Properties[k]; ok {
					walk(append(slices.Clone(path), k), v[k], p)
				}
			}
		case []any:
			if s.MaxItems != nil && len(v) > 0 {
				more := slices.Clone(v)
				for int64(len(more)) <= *s.MaxItems {
					more = append(more, runtime.DeepCopyJSONValue(v[len(v)-1]))
				}
				at(path, fmt.Sprintf("%d items (most %d)", len(more), *s.MaxItems), more)
			}
			if s.MinItems != nil && *s.MinItems > 0 {
				at(path, fmt.Sprintf("%d items (least %d)", *s.MinItems-1, *s.MinItems), slices.Clone(v[:*s.MinItems-1]))
			}
			if s.Items != nil && s.Items.Schema != nil {
				for i, item := range v {
					walk(append(slices.Clone(path), i), item, *s.Items.Schema)
				}
			}
		case string:
			if s.MaxLength != nil {
				at(path, fmt.Sprintf("length %d (most %d)", *s.MaxLength, *s.MaxLength), stretch(v, int(*s.MaxLength), s.Pattern == ""))
				at(path, fmt.Sprintf("length %d (most %d)", *s.MaxLength+1, *s.MaxLength), stretch(v, int(*s.MaxLength)+1, s.Pattern == ""))
			}
			if s.MinLength != nil && *s.MinLength > 0 {
				at(path, fmt.Sprintf("length %d (least %d)", *s.MinLength-1, *s.MinLength), v[:min(len(v), int(*s.MinLength)-1)])
			}
			for _, e := range s.Enum {
				var member string
				if yaml.Unmarshal(e.Raw, &member) == nil {
					at(path, fmt.Sprintf("enum %q", member), member)
				}
			}
			if len(s.Enum) > 0 {
				at(path, "not in the enum", "NotAMember")
			}
			if s.Pattern != "" {
				at(path, "matching no pattern", "!not a match!")
			}
		case int64, float64:
			if s.Minimum != nil {
				at(path, fmt.Sprintf("%v (least %v)", *s.Minimum-1, *s.Minimum), number(s, *s.Minimum-1))
				at(path, fmt.Sprintf("%v (least %v)", *s.Minimum, *s.Minimum), number(s, *s.Minimum))
			}
			if s.Maximum != nil {
				at(path, fmt.Sprintf("%v (most %v)", *s.Maximum, *s.Maximum), number(s, *s.Maximum))
				at(path, fmt.Sprintf("%v (most %v)", *s.Maximum+1, *s.Maximum), number(s, *s.Maximum+1))
			}
		}
	}
	walk(nil, doc, s)
	// ObjectMeta's rules, which the schema does not spell out.
	for what, name := range map[string]any{
		"upper case":       "Node-Partition",
		"253 characters":   strings.Repeat("a", 253),
		"254 characters":   strings.Repeat("a", 254),
		"an empty string":  "",
		"a dot-separated":  "a.b-c",
		"ending in a dash": "ab-",
	} {
		at([]any{"metadata", "name"}, "name "+what, name)
	}
	return out
}

func number(s apiextensionsv1.JSONSchemaProps, f float64) any {
	if s.Type == "integer" {
		return int64(f)
	}
	return f
}

// stretch makes v n bytes long: by trailing spaces when no pattern forbids
// them, so that an expression stays one and only its length is tested, or
// by repeating it.
func stretch(v string, n int, spaces bool) string {
	if len(v) >= n {
		return v[:n]
	}
	if spaces {
		return v + strings.Repeat(" ", n-len(v))
	}
	if v == "" {
		v = "a"
	}
	for len(v) < n {
		v += v
	}
	return v[:n]
}

func TestValidateAgreesWithTheAPIServerAtEveryBound(t *testing.T) {
	sandboxtest.Parallel(t, sandboxtest.Shared(sandboxtest.ControlPlane))
	env := sandboxtest.Get(t)
	dyn := dynamic.NewForConfigOrDie(env.RESTConfig)
	crds, err := deploy.CRDs()
	if err != nil {
		t.Fatal(err)
	}
	schemas := map[string]apiextensionsv1.JSONSchemaProps{}
	resources := map[string]string{}
	docs, err := manifest.Split(crds)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.Unmarshal(d.Raw, &crd); err != nil {
			t.Fatal(err)
		}
		schemas[crd.Spec.Names.Kind] = *crd.Spec.Versions[0].Schema.OpenAPIV3Schema
		resources[crd.Spec.Names.Kind] = crd.Spec.Names.Plural
	}
	// The CRDs as this checkout generates them, whatever the sandbox was
	// brought up with, and served before the first dry run.
	sandboxtest.ApplyCRDs(t, env.RESTConfig, crds)
	files, err := filepath.Glob("../../deploy/examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	offline, err := schema.Faultline()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	// schemaDiffer: the CRD's schema run offline and the server disagree;
	// falseValid: validate says valid where the server refuses (the worst
	// answer); controllerOnly: validate refuses what the server takes, for
	// a check the controller makes before it injects (an objective that
	// does not compile, a time zone that does not exist).
	cases, schemaDiffer, falseValid, controllerOnly := 0, 0, 0, 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs, err := manifest.Split(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, base := range docs {
			s, ok := schemas[base.Kind]
			if !ok || base.Group() != "faultline.dev" {
				continue
			}
			var obj map[string]any
			if err := yaml.Unmarshal(base.Raw, &obj); err != nil {
				t.Fatal(err)
			}
			for _, bc := range boundaries(base.Kind, obj, s) {
				if seen[bc.name] {
					continue
				}
				seen[bc.name] = true
				cases++
				raw, err := yaml.Marshal(bc.doc)
				if err != nil {
					t.Fatal(err)
				}
				parsed, err := manifest.Split(raw)
				if err != nil || len(parsed) != 1 {
					t.Fatalf("%s: %v", bc.name, err)
				}
				_, problems := checkDocument(parsed[0])
				schemaErrs, err := offline.Validate(bc.doc)
				if err != nil {
					t.Fatal(err)
				}
				u := &unstructured.Unstructured{Object: bc.doc}
				u.SetNamespace("default")
				gvr := k8sschema.GroupVersionResource{Group: "faultline.dev", Version: "v1alpha1", Resource: resources[base.Kind]}
				_, serverErr := dyn.Resource(gvr).Namespace("default").Create(context.Background(), u, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"})
				from := filepath.Base(f)
				switch {
				case (len(schemaErrs) == 0) != (serverErr == nil):
					schemaDiffer++
					t.Errorf("%s (from %s): the CRD's schema offline says %v; the API server says %v", bc.name, from, schemaErrs, errOrAccepted(serverErr))
				case serverErr != nil && len(problems) == 0:
					falseValid++
					t.Errorf("%s (from %s): validate says valid; the API server says %v", bc.name, from, errOrAccepted(serverErr))
				case serverErr == nil && len(problems) > 0:
					controllerOnly++
					t.Logf("%s (from %s): refused by the controller's own checks, which the server does not make: %s", bc.name, from, manifest.Clip(strings.Join(problems, "; ")))
				}
			}
		}
	}
	t.Logf("%d boundary cases from the CRDs: %d where the CRD's schema offline and a server-side dry run disagree, %d false valid, %d refused by the controller's own checks only",
		cases, schemaDiffer, falseValid, controllerOnly)
	if cases < 100 {
		t.Errorf("only %d cases: the walk missed the schema", cases)
	}
}

func errOrAccepted(err error) string {
	if err == nil {
		return "accepted"
	}
	return manifest.Clip(err.Error())
}

func sortedKeys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func pathString(path []any) string {
	var b strings.Builder
	for _, p := range path {
		switch p := p.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", p)
		default:
			if b.Len() > 0 {
				b.WriteString(".")
			}
			fmt.Fprint(&b, p)
		}
	}
	return b.String()
}

func setAt(doc map[string]any, path []any, value any) {
	var cur any = doc
	for i, p := range path {
		last := i == len(path)-1
		switch p := p.(type) {
		case string:
			m := cur.(map[string]any)
			if last {
				m[p] = value
				return
			}
			cur = m[p]
		case int:
			l := cur.([]any)
			if last {
				l[p] = value
				return
			}
			cur = l[p]
		}
	}
}
