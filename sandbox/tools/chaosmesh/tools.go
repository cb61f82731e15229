//go:build tools

// Package tools pins the Chaos Mesh commands that sandbox/tools/build.sh
// builds; nothing imports it.
package tools

import _ "github.com/chaos-mesh/chaos-mesh/cmd/chaos-controller-manager"
