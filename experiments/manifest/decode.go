package manifest

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// DecodeStrict decodes a document into out, a pointer, as the API
// server's strict field validation does: an unknown field is an error.
// A value that does not decode as its field's type (a duration such as
// 5x, a quantity such as 2Gx, a string where a number goes) is named by
// its path, such as spec.faults[0].duration, which the JSON decoder's own
// error does not say.
func DecodeStrict(raw []byte, out any) error {
	err := yaml.UnmarshalStrict(raw, out)
	if err == nil {
		return nil
	}
	var doc any
	if yaml.Unmarshal(raw, &doc) != nil {
		return err
	}
	if at := undecodable(reflect.TypeOf(out).Elem(), doc, ""); at != "" {
		return fmt.Errorf("%s", at)
	}
	return err
}

var unmarshaler = reflect.TypeFor[json.Unmarshaler]()

// undecodable walks v, a document decoded generically, along t, the Go
// type it is meant for, and returns "PATH: ERROR" for the first value that
// its type refuses, or "" when none does.
func undecodable(t reflect.Type, v any, path string) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if v == nil {
		return ""
	}
	var shaped bool
	switch v.(type) {
	case map[string]any:
		shaped = t.Kind() == reflect.Struct || t.Kind() == reflect.Map
	case []any:
		shaped = t.Kind() == reflect.Slice
	}
	if !shaped || reflect.PointerTo(t).Implements(unmarshaler) {
		// A leaf, a value of the wrong shape, or a type that decodes
		// itself: decoded alone, as the decoder would.
		b, err := json.Marshal(v)
		if err != nil {
			return ""
		}
		if err := json.Unmarshal(b, reflect.New(t).Interface()); err != nil {
			return fmt.Sprintf("%s: %s", orDocument(path), leafError(err))
		}
		return ""
	}
	switch t.Kind() {
	case reflect.Struct:
		m := v.(map[string]any)
		fields := fieldsOf(t)
		for _, k := range slices.Sorted(maps.Keys(m)) {
			ft, ok := fields[k]
			if !ok {
				// The API server's strict field validation, in its words.
				return fmt.Sprintf("unknown field %q", join(path, k))
			}
			if at := undecodable(ft, m[k], join(path, k)); at != "" {
				return at
			}
		}
	case reflect.Slice:
		for i, e := range v.([]any) {
			if at := undecodable(t.Elem(), e, fmt.Sprintf("%s[%d]", path, i)); at != "" {
				return at
			}
		}
	case reflect.Map:
		m := v.(map[string]any)
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if at := undecodable(t.Elem(), m[k], fmt.Sprintf("%s[%s]", path, k)); at != "" {
				return at
			}
		}
	}
	return ""
}

// fieldsOf are the JSON names of a struct's fields and their types, those
// of inlined structs included.
func fieldsOf(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-" || (!f.IsExported() && !f.Anonymous):
		case f.Anonymous && (name == "" || opts == "inline"):
			et := f.Type
			for et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				maps.Copy(out, fieldsOf(et))
			}
		default:
			if name == "" {
				name = f.Name
			}
			out[name] = f.Type
		}
	}
	return out
}

// leafError says what is wrong with a value in its own words: a type
// mismatch says what was expected, not the Go type's name.
func leafError(err error) string {
	if te, ok := err.(*json.UnmarshalTypeError); ok {
		return fmt.Sprintf("a %s cannot be a %s", te.Value, kindName(te.Type))
	}
	return err.Error()
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "boolean (true or false)"
	case reflect.String:
		return "string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "whole number"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "list"
	case reflect.Map, reflect.Struct:
		return "map"
	}
	return t.String()
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func orDocument(path string) string {
	if path == "" {
		return "the document"
	}
	return path
}
