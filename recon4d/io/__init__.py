"""recon4d.io: images and videos in, model-input views out; writers for the output formats."""

from recon4d.io.images import load_images
from recon4d.io.sources import FrameSource, collect_frames
from recon4d.io.video import VideoFrames, read_video

__all__ = ["FrameSource", "VideoFrames", "collect_frames", "load_images", "read_video"]
