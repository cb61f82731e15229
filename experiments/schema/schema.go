// Package schema checks faultline objects against the CRDs' own schemas,
// offline, with the API server's own code (k8s.io/apiextensions-apiserver):
// defaulting, the structural schema's bounds, patterns and enums,
// x-kubernetes-list-type uniqueness, ObjectMeta's rules and the
// x-kubernetes-validations CEL rules under the server's cost budget, in
// the order the server's strategy for custom resources runs them on a
// create. A hand-written copy of the rules would drift from what the
// cluster enforces; these are the server's own functions
// (kubernetes-sigs/kubectl-validate does the same for any CRD). The
// strategy itself is not used: its package brings the storage layer, and
// etcd's client, into the CLI. A parity test with a server-side dry run
// keeps the composition honest.
package schema

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	apiextensionsinternal "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	structurallisttype "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	schemaobjectmeta "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/objectmeta"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	metavalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sschema "k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/storage/names"
)

// Validator checks objects of the kinds of a set of CRDs.
type Validator struct {
	kinds map[k8sschema.GroupVersionKind]*kind
}

type kind struct {
	namespaced bool
	structural *structuralschema.Structural
	schema     apiservervalidation.SchemaValidator
	cel        *cel.Validator
}

// New builds a Validator from a YAML stream of CustomResourceDefinitions
// (apiextensions.k8s.io/v1), one entry per served version.
func New(crds []byte) (*Validator, error) {
	v := &Validator{kinds: map[k8sschema.GroupVersionKind]*kind{}}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(crds), 4096)
	for {
		var crd apiextensionsv1.CustomResourceDefinition
		err := dec.Decode(&crd)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading the CRDs: %w", err)
		}
		if crd.Name == "" {
			continue
		}
		if err := v.add(&crd); err != nil {
			return nil, fmt.Errorf("CRD %s: %w", crd.Name, err)
		}
	}
	return v, nil
}

func (v *Validator) add(crd *apiextensionsv1.CustomResourceDefinition) error {
	var internal apiextensionsinternal.CustomResourceDefinition
	if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(crd, &internal, nil); err != nil {
		return err
	}
	namespaced := internal.Spec.Scope == apiextensionsinternal.NamespaceScoped
	for _, ver := range internal.Spec.Versions {
		// The internal form keeps a schema shared by every version once,
		// at the top.
		validation := internal.Spec.Validation
		if ver.Schema != nil {
			validation = ver.Schema
		}
		if !ver.Served || validation == nil || validation.OpenAPIV3Schema == nil {
			continue
		}
		gvk := k8sschema.GroupVersionKind{Group: internal.Spec.Group, Version: ver.Name, Kind: internal.Spec.Names.Kind}
		props := validation.OpenAPIV3Schema
		ss, err := structuralschema.NewStructural(props)
		if err != nil {
			return fmt.Errorf("version %s: %w", ver.Name, err)
		}
		validator, _, err := apiservervalidation.NewSchemaValidator(props)
		if err != nil {
			return fmt.Errorf("version %s: %w", ver.Name, err)
		}
		// Compiled once, as the server caches them per CRD.
		rules := cel.NewValidator(ss, true, celconfig.PerCallLimit)
		v.kinds[gvk] = &kind{namespaced: namespaced, structural: ss, schema: validator, cel: rules}
	}
	return nil
}

// ErrUnknownKind is returned for a kind none of the CRDs defines.
var ErrUnknownKind = errors.New("no CRD defines this kind")

// Validate checks obj as the API server would on a create: it defaults a
// copy, then validates it, and returns each field refused (none: the
// server would take it). A namespaced object without a namespace is
// checked in "default", as the CLI fills one in later.
func (v *Validator) Validate(obj map[string]any) (field.ErrorList, error) {
	// Through JSON, as the server decodes a body: integers are int64,
	// and the caller's object is left as it was.
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(raw); err != nil {
		return nil, err
	}
	gvk := u.GroupVersionKind()
	k := v.kinds[gvk]
	if k == nil {
		return nil, fmt.Errorf("%w: %s", ErrUnknownKind, gvk)
	}
	if k.namespaced && u.GetNamespace() == "" {
		u.SetNamespace("default")
	}
	// What the server does before it validates: defaults, and a name
	// made from generateName.
	structuraldefaulting.Default(u.Object, k.structural)
	if u.GetName() == "" && u.GetGenerateName() != "" {
		u.SetName(names.SimpleNameGenerator.GenerateName(u.GetGenerateName()))
	}
	// The strategy's Validate, in its order.
	errs := metavalidation.ValidateObjectMetaAccessor(u, k.namespaced, metavalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	errs = append(errs, apiservervalidation.ValidateCustomResource(nil, u.UnstructuredContent(), k.schema)...)
	errs = append(errs, schemaobjectmeta.Validate(nil, u.Object, k.structural, false)...)
	errs = append(errs, structurallisttype.ValidateListSetsAndMaps(nil, k.structural, u.Object)...)
	if blocking(errs) {
		errs = append(errs, field.Invalid(nil, nil, "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"))
	} else {
		celErrs, _ := k.cel.Validate(context.Background(), nil, k.structural, u.Object, nil, celconfig.RuntimeCELCostBudget)
		errs = append(errs, celErrs...)
	}
	return errs, nil
}

// blocking reports an error after which the server does not run the CEL
// rules: they could read a field of the wrong type or shape.
func blocking(errs field.ErrorList) bool {
	for _, e := range errs {
		switch e.Type {
		case field.ErrorTypeNotSupported, field.ErrorTypeRequired, field.ErrorTypeTooLong, field.ErrorTypeTooMany, field.ErrorTypeTypeInvalid:
			return true
		}
	}
	return false
}
