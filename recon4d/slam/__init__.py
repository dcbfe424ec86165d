"""recon4d.slam"""
