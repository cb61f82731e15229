// Package v1alpha1 is faultline's API, group faultline.dev: Experiment (what
// to break and what must still hold) and FaultAssignment (what one node's
// agent must do, and until when).
// +kubebuilder:object:generate=true
// +groupName=faultline.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is faultline.dev/v1alpha1.
	GroupVersion = schema.GroupVersion{Group: "faultline.dev", Version: "v1alpha1"}
	// SchemeBuilder registers the types with a scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}
	// AddToScheme adds the types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
