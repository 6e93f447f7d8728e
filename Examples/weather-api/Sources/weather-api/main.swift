import WeatherAPI

try await WeatherServer().run()
