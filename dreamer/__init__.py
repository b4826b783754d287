"""dreamer: everything that makes pictures, with no network code.

- `models`: name -> frozen classifier for [0, 1] RGB (embedded `efficientnet_lite0`, torchvision's).
- `classes`: the 1000 ImageNet classes and the request language ("pizza + volcano") -> `Target`.
- `objectives` + `regularize`: what a step maximises, and the transforms and gradient
  conditioning that make the result look like a picture.
- `loop`: the stateful frame step (zoom, blur, a few gradient steps); `render` writes files.
- `runtime`: process settings for dreaming on the CPU (keep freed memory, one OpenCV thread).
"""
