"""What runs inside the grading kernel's sandbox, and nothing else.

The sandbox receives this package alone (``autograder.host.sandbox.kernel_archive``): ``boot`` starts the kernel,
``probe`` answers the grader's requests by running the student's code on the inputs it is given, ``wire``
encodes what crosses the channel, ``blockers`` keeps ready-made LSTMs out of the student's code and
``fixtures`` builds the few grader-made objects a test hands to student code. Nothing here decides a
score: the grader (``autograder.checks``) draws the inputs, computes the references and judges, in its
own process. No module here imports anything of the autograder outside this package.
"""
