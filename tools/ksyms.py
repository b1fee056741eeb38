#!/usr/bin/env python3
"""STUB"""
