"""Built-in metrics (plug-in). Metric classes are imported only when a run uses them."""

from bench.hookspecs import hookimpl


@hookimpl
def register_metrics(register):
    register("fid", "bench.metrics.fid:FID", description="Frechet Inception Distance (clean-fid, clean mode)",
             keys=["fid"])
    register("fid_stats", "bench.metrics.fid_stats:FIDStats",
             description="FID against imported reference statistics (stats=FILE.npz: clean-fid or exported)",
             keys=["fid_stats"])
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
    register("fd_dinov2", "bench.metrics.distribution:FDDinov2",
             description="Frechet distance on DINOv2 ViT-L/14 features (dgm-eval)", keys=["fd_dinov2"])
    register("cmmd", "bench.metrics.distribution:CMMD",
             description="CMMD: Gaussian MMD on CLIP ViT-L/14-336 embeddings x 1000 (google-research/cmmd)",
             keys=["cmmd"])
    register("pickscore", "bench.metrics.pickscore:PickScore",
             description="PickScore v1: logit_scale x cosine of a CLIP-H reward model", keys=["pickscore"])
    register("image_reward", "bench.metrics.image_reward:ImageReward",
             description="ImageReward v1.0: BLIP reward of each image for its prompt", keys=["image_reward"])
    register("diversity", "bench.metrics.diversity:Diversity",
             description="per-prompt Vendi score and mean pairwise cosine distance (DINOv2)",
             keys=["vendi", "pairwise_distance"])


@hookimpl
def register_feature_extractors(register):
    register("inception", "bench.metrics.extractors:InceptionExtractor",
             description="Inception-v3 pool3, 2048-d (clean-fid clean mode, 2015-12-05 weights)")
    register("inception_tf1", "bench.metrics.inception_tf:InceptionTF1Extractor",
             description="Inception-v3 pool3 after the TF1 graph's bilinear resize to 299 (ADM evaluator; rgb or bgr)")
    register("vgg16", "bench.metrics.extractors:VGG16Extractor", description="VGG-16 fc2, 4096-d (torchvision)")
    register("clip", "bench.metrics.clip_extractor:ClipExtractor",
             description="open_clip image and text towers (CLIP score, HPS)")
    register("dinov2", "bench.metrics.hf_extractors:Dinov2Extractor",
             description="DINOv2 CLS token (ViT-L/14 1024-d by default; dgm-eval preprocessing, transformers port)")
    register("image_reward", "bench.metrics.image_reward:ImageRewardExtractor",
             description="ImageReward v1.0 (text-conditioned: each image is scored with its prompt)")
    register("hf_clip", "bench.metrics.hf_extractors:HFClipExtractor",
             description="transformers CLIPModel image and text embeddings (CMMD's ViT-L/14-336, PickScore)")


@hookimpl
def register_toy_repos(register):
    """The metric networks' repositories of the offline toy hub (:mod:`bench.toy_hub`)."""
    from bench.toy_hub_metrics import register_metric_repos

    register_metric_repos(register)
