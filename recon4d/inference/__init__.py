"""recon4d.inference"""
