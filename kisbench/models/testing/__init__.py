"""models/testing"""
