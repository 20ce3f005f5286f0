"""The verification report (the main job): :mod:`~lrdecay.report.jobs` (what runs and the cache),
:mod:`~lrdecay.report.claims` (the registry of claims and their judges), :mod:`~lrdecay.report.render`
(the pages) and :mod:`~lrdecay.report.runner` (``lrdecay report``)."""
