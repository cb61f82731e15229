package v1alpha1

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"faultline.dev/faultline/deploy"
)

// What a user applies with kubectl is stored as written; what a Go client
// sends is what the Go type serializes. The two must say the same thing, or
// an object written back by Go differs from the one stored (an immutable
// spec then refuses the write, a defaulted field changes meaning).

// kinds are the API's root types, by kind.
var kinds = map[string]any{"Experiment": Experiment{}, "Schedule": Schedule{}, "FaultAssignment": FaultAssignment{}}

// walkFields calls fn on every field of t's structs reachable from it,
// with its JSON path.
func walkFields(t reflect.Type, path string, seen map[reflect.Type]bool, fn func(path string, f reflect.StructField)) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || seen[t] || t.PkgPath() != reflect.TypeOf(Experiment{}).PkgPath() {
		return
	}
	seen[t] = true
	defer delete(seen, t)
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		p := path + "." + name
		if name == "" {
			p = path
		}
		fn(p, f)
		walkFields(f.Type, p, seen, fn)
	}
}

func TestAnOptionalObjectIsAPointerSoTheGoTypeWritesBackOnlyWhatWasStored(t *testing.T) {
	// encoding/json never omits a struct value: `safety,omitempty` on a
	// Safety (not *Safety) is always sent as safety: {}.
	for kind, v := range kinds {
		walkFields(reflect.TypeOf(v), kind, map[reflect.Type]bool{}, func(path string, f reflect.StructField) {
			tag := f.Tag.Get("json")
			if f.Type.Kind() != reflect.Struct || !strings.Contains(tag, "omitempty") || f.Anonymous {
				return
			}
			switch f.Type {
			case reflect.TypeOf(metav1.ObjectMeta{}), reflect.TypeOf(metav1.ListMeta{}):
				return
			}
			if strings.Count(path, ".") == 1 && f.Name == "Status" {
				return // written only through the status subresource
			}
			t.Errorf("%s (%s): an optional struct field is always serialized; make it a pointer", path, f.Type)
		})
	}
}

// schemaOf loads the generated CRD of kind.
func schemaOf(t *testing.T, kind string) *apiextensionsv1.JSONSchemaProps {
	t.Helper()
	var found *apiextensionsv1.JSONSchemaProps
	err := fs.WalkDir(deploy.Files, "crds", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := deploy.Files.ReadFile(p)
		if err != nil {
			return err
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.Unmarshal(b, &crd); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if crd.Spec.Names.Kind == kind {
			found = crd.Spec.Versions[0].Schema.OpenAPIV3Schema
		}
		return nil
	})
	if err != nil || found == nil {
		t.Fatalf("no CRD for %s: %v", kind, err)
	}
	return found
}

// zeroAllowed says whether the schema accepts the Go zero value of a field
// of kind k: if it does, a Go client cannot tell "zero" from "unset", and
// the server's default replaces what the user asked for.
func zeroAllowed(s *apiextensionsv1.JSONSchemaProps, k reflect.Kind) bool {
	var zero any
	switch k {
	case reflect.Int32, reflect.Int64, reflect.Int:
		if (s.Minimum != nil && *s.Minimum > 0) || (s.Maximum != nil && *s.Maximum < 0) {
			return false
		}
		zero = float64(0)
	case reflect.String:
		if (s.MinLength != nil && *s.MinLength > 0) || s.Pattern != "" {
			return false
		}
		zero = ""
	case reflect.Bool:
		zero = false
	default:
		return true
	}
	if len(s.Enum) == 0 {
		return true
	}
	for _, e := range s.Enum {
		var v any
		if json.Unmarshal(e.Raw, &v) == nil && v == zero {
			return true
		}
	}
	return false
}

// walkSchema follows the Go type and its schema together.
func walkSchema(t reflect.Type, s *apiextensionsv1.JSONSchemaProps, path string, fn func(path string, f reflect.StructField, s *apiextensionsv1.JSONSchemaProps)) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Slice:
		if s.Items != nil && s.Items.Schema != nil {
			walkSchema(t.Elem(), s.Items.Schema, path+"[]", fn)
		}
		return
	case reflect.Map:
		if s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil {
			walkSchema(t.Elem(), s.AdditionalProperties.Schema, path+"{}", fn)
		}
		return
	case reflect.Struct:
	default:
		return
	}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous || name == "" || name == "-" {
			continue
		}
		ps, ok := s.Properties[name]
		if !ok {
			continue
		}
		fn(path+"."+name, f, &ps)
		walkSchema(f.Type, &ps, path+"."+name, fn)
	}
}

func TestADefaultedFieldWhoseZeroIsValidIsAPointerSoZeroSurvivesAGoClient(t *testing.T) {
	checked := 0
	for kind, v := range kinds {
		walkSchema(reflect.TypeOf(v), schemaOf(t, kind), kind, func(path string, f reflect.StructField, s *apiextensionsv1.JSONSchemaProps) {
			if s.Default == nil {
				return
			}
			checked++
			k := f.Type.Kind()
			if k == reflect.Pointer || k == reflect.Slice || k == reflect.Map {
				return
			}
			if zeroAllowed(s, k) {
				t.Errorf("%s defaults to %s and accepts the zero value: a Go client that sends 0, \"\" or false loses it to the default (omitempty drops it); make it a pointer", path, s.Default.Raw)
			}
		})
	}
	if checked < 5 {
		t.Fatalf("only %d defaulted fields found: the walk does not reach the schema's defaults", checked)
	}
}

// normalize makes values that mean the same thing compare equal: a
// duration ("90s" and "1m30s") or a quantity ("1024Mi" and "1Gi") that Go
// writes in its own canonical form, and a zero number, string or bool that
// Go leaves out (absent and zero mean the same where no default applies;
// where one does, the field must be a pointer, which the test above
// checks).
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			if e == nil || e == float64(0) || e == "" || e == false {
				continue
			}
			out[k] = normalize(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	case string:
		if d, err := time.ParseDuration(x); err == nil {
			return "duration:" + d.String()
		}
		if q, err := resource.ParseQuantity(x); err == nil {
			return "quantity:" + q.String()
		}
	}
	return v
}

func TestEveryShippedManifestRoundTripsThroughTheGoTypes(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "..", "deploy", "examples", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	n := 0
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		docs, err := deploy.Decode(raw)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for _, doc := range docs {
			proto, ok := kinds[doc.GetKind()]
			if !ok || doc.GetAPIVersion() != GroupVersion.String() {
				continue
			}
			n++
			name := filepath.Base(file) + " " + doc.GetKind() + "/" + doc.GetName()
			t.Run(name, func(t *testing.T) {
				b, err := json.Marshal(doc.Object)
				if err != nil {
					t.Fatal(err)
				}
				typed := reflect.New(reflect.TypeOf(proto)).Interface()
				if err := yaml.UnmarshalStrict(b, typed); err != nil {
					t.Fatalf("the Go type does not take the manifest: %v", err)
				}
				back, err := json.Marshal(typed)
				if err != nil {
					t.Fatal(err)
				}
				var got map[string]any
				if err := json.Unmarshal(back, &got); err != nil {
					t.Fatal(err)
				}
				want, have := normalize(doc.Object["spec"]), normalize(got["spec"])
				if !reflect.DeepEqual(want, have) {
					wb, _ := json.MarshalIndent(want, "", " ")
					hb, _ := json.MarshalIndent(have, "", " ")
					t.Errorf("the spec written back by Go differs from the manifest's\nmanifest: %s\nGo:       %s", wb, hb)
				}
			})
		}
	}
	if n < 10 {
		t.Fatalf("only %d faultline manifests among the examples", n)
	}
}
