"""dreamer: everything that makes pictures, with no network code.

- `models`: name -> frozen classifier for [0, 1] RGB (embedded `efficientnet_lite0`, torchvision's);
  `efficientnet_lite` rebuilds the embedded network from its state dict.
- `classes`: the 1000 ImageNet classes and the request language ("pizza + volcano") -> `Target`.
- `objectives` (what a step maximises), `regularize` (views, gradient bands, colour axes) and
  `prior` (a natural-image prior fitted on photos, `data/natural_prior.npz`): what makes the
  result look like a picture at the size people watch it.
- `settings`: the dream's settings and the model names, no torch (a front door reads them);
- `loop`: the stateful frame step (zoom, blur, a few gradient steps); `render` writes files;
  `photo` fits a start photo to the frame (crop, pad or stretch; or the frame to the photo);
  `runtime`: process-wide settings the commands that dream apply once.
"""
