"""recon4d.models"""
