package conf

import "testing"

func BenchmarkParseOperatorConfig(b *testing.B) {
	data, err := Render(operatorOptions())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Parse(data, "nats.conf"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRenderOperatorConfig(b *testing.B) {
	o := operatorOptions()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Render(o); err != nil {
			b.Fatal(err)
		}
	}
}
