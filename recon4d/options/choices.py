"""Names and choices the option help texts need; the heavy modules import them from here."""

DEFAULT_WEIGHTS = "DUSt3R_ViTLarge_BaseDecoder_512_dpt"
CHECKPOINT_HELP = ("a registry name (dust3r, mast3r, monst3r, ...; downloaded once), "
                   "hf-hub:OWNER/NAME[@REV] for any Hugging Face Hub repo, or a local .pth file "
                   "or Hugging Face folder (file:PATH never downloads)")
AUTO_GRAPH_WINDOW = 5  # `auto`: complete graph up to 2*5+1 frames, swin-5 beyond
GRAPH_HELP = ("complete, swin-K, swin-K-noncyclic, logwin-K, logwin-K-noncyclic, oneref-R, "
              "retrieval-Na-k (K window size, default 3; R reference image, default 0; "
              "retrieval: Na key images and the k most similar images per image, by image "
              "similarity; retrieval = retrieval-20-10)")
PREFILTER_HELP = "seqN (keep pairs with |i-j| <= N) or cycN (the same, distance taken circularly)"
DEVICES = ("cpu", "cuda")
DTYPES = ("fp32", "bf16", "fp16")  # keys of recon4d.models.precision.AUTOCAST_DTYPES
SOLVERS = ("fast", "adam")
MATCH_WEIGHTS = "MASt3R_ViTLarge_BaseDecoder_512_catmlpdpt_metric"
MASK_MODES = ("search", "post")
BACKGROUND_COLOURS = ("black", "grey", "white")  # keys of recon4d.matching.masks.BACKGROUND_COLOURS
DISTANCES = ("dot", "l2")  # recon4d.matching.reciprocal.DISTANCES
CONF_MODES = ("min", "geometric")  # recon4d.matching.filters.CONF_MODES
TRAJECTORIES = ("orbit", "walk", "shake", "rotation")  # recon4d.synthetic.trajectories
DEFAULT_BLOCK_SIZE = 2**13  # recon4d.matching.reciprocal.DEFAULT_BLOCK_SIZE
DEFAULT_MAX_ITER = 10  # recon4d.matching.reciprocal.DEFAULT_MAX_ITER

# recon4d eval (the evaluation modules import these)
METRIC_GROUPS = ("poses", "depth", "masks", "cloud")
GT_FORMATS = ("synthetic", "sintel", "davis", "bonn", "tum")  # detection order: Bonn is also TUM
POSE_ALIGN_MODES = ("sim3", "se3", "scale", "none")
DEPTH_ALIGN_MODES = ("none", "median", "scale", "scale_shift")
SCALE_SHIFT_FITS = ("l1", "l2", "reference")
FIT_SPACES = ("depth", "disparity")
DEPTH_PROTOCOLS = ("monst3r", "robust")
RESIZE_METHODS = ("bicubic", "nearest")
GEOMETRIES = ("resize", "crop")
BOUNDARY_TOLERANCE = 0.008  # DAVIS: fraction of the image diagonal

# recon4d masks
MOTION_METHODS = ("attention", "flow")  # Easi3R's attention masks, MonST3R's flow masks
MOTION_CHOICES = ("auto", *MOTION_METHODS, "none")  # none: static (reconstruct only)
FLOW_METHODS = ("dis", "raft")  # optical flow estimators of recon4d.dynamics.optical_flow
ATTENTION_PASSES = (1, 2)  # Easi3R: 2 = re-run with the first pass's masks
