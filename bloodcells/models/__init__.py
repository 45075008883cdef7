"""The labs' models: a Keras CNN (lab 1) and fastai transfer learning (lab 2).

Submodules are imported on demand so a Keras notebook never loads torch and vice versa.
"""
