"""The kubernetes backend: DocumentJobs through the API server, files in S3, keys in a Secret.

Imported only when ``DOCJOBS_BACKEND=kubernetes`` (or ``--backend kubernetes``), so embedded
mode never needs the ``kubernetes`` package.
"""
