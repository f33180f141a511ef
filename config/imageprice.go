package config

import (
	"math"
	"sort"
	"strings"
)

// imagePriceLimit bounds one image's price in USD.
const imagePriceLimit = 1000

// ImageQualities are the quality values the OpenAI Images API takes
// (GPT image models, and the retired DALL·E's standard and hd); a
// per_image key may name one after its size.
var ImageQualities = []string{"low", "medium", "high", "xhigh", "max", "auto", "standard", "hd"}

// ImagePriceKey splits a per_image key into its size and quality ("" when
// it names none) and reports whether it is well formed: a size that is
// "auto" or WIDTHxHEIGHT (1 to 5 digits each, no leading zero), then
// optionally "/" and one of ImageQualities.
func ImagePriceKey(key string) (size, quality string, ok bool) {
	size, quality, _ = strings.Cut(key, "/")
	if quality != "" || strings.HasSuffix(key, "/") {
		found := false
		for _, q := range ImageQualities {
			found = found || q == quality
		}
		if !found {
			return "", "", false
		}
	}
	if size == "auto" {
		return size, quality, true
	}
	w, h, cut := strings.Cut(size, "x")
	return size, quality, cut && dimension(w) && dimension(h)
}

// dimension reports whether s is a pixel count of 1 to 5 digits without a
// leading zero.
func dimension(s string) bool {
	if len(s) == 0 || len(s) > 5 || s[0] == '0' {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// validateImagePrices checks one model's per_image prices at path.
func (v *validator) validateImagePrices(path, model string, prices map[string]float64) {
	keys := make([]string, 0, len(prices))
	for k := range prices {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, _, ok := ImagePriceKey(k); !ok {
			v.at(path+"."+k, "per_image key %q of model %q is not an image size: use WIDTHxHEIGHT (e.g. 1024x1024) or auto, optionally followed by /quality (one of %s)", k, model, strings.Join(ImageQualities, ", "))
			continue
		}
		if x := prices[k]; x < 0 || x > imagePriceLimit || math.IsNaN(x) {
			v.at(path+"."+k, "per_image price %q of model %q must be between 0 and %d USD per image", k, model, imagePriceLimit)
		}
	}
}
