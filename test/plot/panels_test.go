package plot

import "testing"

func TestGridLabelsKeepEveryDigitOfTheStep(t *testing.T) {
	for _, c := range []struct {
		max  float64
		want []string
	}{
		{0.245, []string{"0", "0.1", "0.2", "0.3"}},
		{0.018, []string{"0", "0.005", "0.01", "0.015", "0.02"}},
		{0.0009, []string{"0", "0.0005", "0.001"}},
		{78.34, []string{"0", "20", "40", "60", "80"}},
	} {
		step := niceStep(c.max)
		var got []string
		for v := 0.0; v <= c.max+step; v += step {
			got = append(got, trim(v))
		}
		if len(got) != len(c.want) {
			t.Errorf("max %v: labels %q, want %q", c.max, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("max %v: labels %q, want %q", c.max, got, c.want)
				break
			}
		}
	}
}

func TestValueShowsThreeSignificantDigits(t *testing.T) {
	for v, want := range map[float64]string{
		0.161:    "0.161",
		0.2449:   "0.245",
		0.001234: "0.00123",
		0:        "0",
		24.54:    "24.5",
		981.4:    "981",
		12345.6:  "12346",
	} {
		if got := Value(v); got != want {
			t.Errorf("Value(%v) = %q, want %q", v, got, want)
		}
	}
}
