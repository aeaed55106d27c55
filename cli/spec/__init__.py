"""The mlkit.yaml spec: models (schema.py), accelerator table, cross-field rules and the loader (loader.py).

Nothing is re-exported here: importing any module of the package runs this file, and a re-export of
the loader would make every importer of the models run the rules, the clouds and placement too."""
