"""reset"""
