"""The pages for people: server-rendered HTML over the same services as the APIs."""
