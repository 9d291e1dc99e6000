"""The labelling tool: a small local web app that grows a collection's query set.

It shows a random not-yet-labelled image, takes a short and a long label (or a skip with a
reason) and writes them, with the annotator's name, to ``labels/<collection>.csv`` and
``labels/<collection>.skipped.csv``. ``files`` owns those files, ``sampler`` the order in
which images come up, ``server`` the web page and its JSON API.
"""
