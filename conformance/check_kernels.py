"""The conformance checks as pytest items hang from this file (see pytest_plugin.py):

python -m pytest --pyargs refcnn.conformance --refcnn-plugin FILE --refcnn-impl NAME
"""
