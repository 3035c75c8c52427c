// Placeholder so that the library has a source until its first real file lands; delete it then.
