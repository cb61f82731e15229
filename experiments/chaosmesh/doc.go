// Package chaosmesh translates an Experiment's faults into Chaos Mesh
// objects, for `spec.engine: chaos-mesh`: a cluster that already runs
// Chaos Mesh gets faultline's analyzers, objectives and reports without
// faultline's privileged agents.
//
// The translation is pure: the controller resolves the targets under
// faultline's safety rules first (Targets) and creates what Object returns.
// Each object carries the fault's duration, so that Chaos Mesh ends the
// fault by itself when faultline is gone, and faultline's labels, so that
// the controller finds its objects again after a restart. What Chaos Mesh
// cannot express the API refuses (v1alpha1.Fault.ValidateChaosMesh), and
// so does Object, naming the field.
package chaosmesh
