package report

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestJSONRoundTrip(t *testing.T) {
	r := FromExperiment(partitioned())
	var b bytes.Buffer
	if err := Write(&b, JSON, r); err != nil {
		t.Fatal(err)
	}
	back, err := Read(&b)
	if err != nil {
		t.Fatal(err)
	}
	// Compact encodings compare what was kept, whatever the indentation of
	// the faults' raw parameters.
	want, _ := json.Marshal(r)
	got, _ := json.Marshal(back)
	if !bytes.Equal(got, want) {
		t.Errorf("the report changed through JSON:\n got %s\nwant %s", got, want)
	}
	if back.APIVersion != "faultline.dev/report/v1" || back.Kind != KindExperiment {
		t.Errorf("apiVersion %q kind %q", back.APIVersion, back.Kind)
	}
	if n := len(back.Traffic.Buckets); n != 100 {
		t.Errorf("%d traffic buckets, want 100", n)
	}
	if len(back.Fsync) != 3 || back.Fsync[1].Window != "fault" || back.Fsync[1].P99Seconds != 0.032 || *back.Fsync[1].Fsyncs != 1200 {
		t.Errorf("fsync windows %+v", back.Fsync)
	}
	if o := back.Objectives[1]; o.Measured["evictions.count"] != "3" || len(o.Measured) != 1 {
		t.Errorf("objective %q measured %v, want evictions.count only", o.Name, o.Measured)
	}
	if f := back.Spec.Faults[0]; f.From == nil || !f.From.Equal(t0) || !f.To.Equal(t0.Add(60e9)) {
		t.Errorf("fault window %v–%v, want 60s from t0", f.From, f.To)
	}
}

func TestReadRefusesOtherVersions(t *testing.T) {
	if _, err := Read(bytes.NewBufferString(`{"apiVersion":"faultline.dev/report/v2","kind":"ExperimentReport"}`)); err == nil {
		t.Error("a v2 report was read as v1")
	}
}
