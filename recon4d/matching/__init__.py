"""recon4d.matching"""
