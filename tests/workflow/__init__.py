"""The example CI workflows, run as GitHub and GitLab run them."""
