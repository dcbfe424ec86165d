"""recon4d.io"""
