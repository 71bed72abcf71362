"""Built-in metrics (plug-in). Metric classes are imported only when a run uses them."""

from bench.hookspecs import hookimpl


@hookimpl
def register_metrics(register):
    register("fid", "bench.metrics.fid:FID", description="Frechet Inception Distance (clean-fid, clean mode)",
             keys=["fid"])
    register("kid", "bench.metrics.fid:KID", description="Kernel Inception Distance (same features as FID)",
             keys=["kid"])
    register("inception_score", "bench.metrics.fid:InceptionScore",
             description="Inception Score of the generated images (10 splits)", keys=["inception_score"])
    register("clip_score", "bench.metrics.clip_score:ClipScore",
             description="CLIP score: mean cosine, open_clip ViT-g-14", keys=["clip_score"])
    register("precision_recall", "bench.metrics.precision_recall:PrecisionRecall",
             description="improved precision/recall, k=3, Inception features", keys=["precision", "recall"])
    register("density_coverage", "bench.metrics.precision_recall:DensityCoverage",
             description="density/coverage, k=5, Inception features", keys=["density", "coverage"])
    register("hps", "bench.metrics.hps:HPS", description="HPSv2 human preference score (x100)", keys=["hps"])
    register("latency", "bench.metrics.latency:Latency", description="batch-1 latency in the run",
             keys=["latency_ms"])


@hookimpl
def register_feature_extractors(register):
    register("inception", "bench.metrics.extractors:InceptionExtractor",
             description="Inception-v3 pool3, 2048-d (clean-fid clean mode, 2015-12-05 weights)")
    register("inception_tf1", "bench.metrics.inception_tf:InceptionTF1Extractor",
             description="Inception-v3 pool3 after the TF1 graph's bilinear resize to 299 (ADM evaluator; rgb or bgr)")
    register("vgg16", "bench.metrics.extractors:VGG16Extractor", description="VGG-16 fc2, 4096-d (torchvision)")
    register("clip", "bench.metrics.extractors:ClipExtractor",
             description="open_clip image and text towers (CLIP score, HPS)")
