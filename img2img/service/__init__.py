"""The app's library layer: everything the page does but draw (img2img/app). `models` (the
models offered and loaded), `translation` (requests), `training` and `runs` (the Train tab),
`datasets` (the data root), `serving` (who may use it, how much at once). Each is imported
where it is used."""
