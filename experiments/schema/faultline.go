package schema

import (
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"faultline.dev/faultline/deploy"
	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

// scheme names the kind of a typed object that does not say it.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}()

// Faultline is the Validator of faultline's own CRDs, as deploy embeds
// them: built once, on first use.
var Faultline = sync.OnceValues(func() (*Validator, error) {
	crds, err := deploy.CRDs()
	if err != nil {
		return nil, err
	}
	return New(crds)
})

// Check checks a typed faultline object (an Experiment, a Schedule) as
// the API server would on a create, with faultline's CRDs.
func Check(obj runtime.Object) (field.ErrorList, error) {
	v, err := Faultline()
	if err != nil {
		return nil, fmt.Errorf("the embedded CRDs: %w", err)
	}
	gvk, err := apiutil.GVKForObject(obj, scheme)
	if err != nil {
		return nil, err
	}
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	u["apiVersion"], u["kind"] = gvk.GroupVersion().String(), gvk.Kind
	return v.Validate(u)
}
